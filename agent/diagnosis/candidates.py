"""Candidate causes: what errlearn already knows, in a form a diagnosis can be written from.

Every imported knowledge entry (a runbook: Symptoms / Meaning / Diagnosis / Mitigation / Prevention)
and every approved guide entry (indexed into the same knowledge collection with kind `guide`) is a
candidate. A person confirms a diagnosis by approving the guide entry drafted from it, so confirmed
diagnoses arrive here as guide entries too.

`find_candidates` asks retrieval (its public `search`) for the entries nearest to the pattern's own
evidence: the error type and the deciding lines of its events, not only the pattern's template.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.capture.evidence import extract_evidence
from agent.domain import ErrorEvent, EvidenceKind, Pattern
from agent.retrieval.knowledge import parse_markdown
from agent.retrieval.service import Retrieval

QUERY_CHARS = 2_000
"""The evidence query is bounded (the embedder reads the start of a text)."""
MAX_STEPS = 4
MAX_TIPS = 3
_ROOT_SECTIONS = ("Root cause", "Cause", "Meaning", "Description", "Overview", "Summary")
_STEP_SECTIONS = ("Mitigation", "Solution", "Fix", "Resolution", "Remediation", "Workaround", "Recovery", "Steps")
_TIP_SECTIONS = ("Prevention",)
_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+(.*)$")
_MARKUP = re.compile(r"\*\*|__|`|!?\[([^\]\n]*)\]\([^)\n]*\)")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z`(])")


@dataclass(frozen=True)
class Candidate:
    """One known cause, ready to be cited and written out."""

    id: str
    """The knowledge id (`kb_…`) or guide id (`ERROR-001`)."""
    kind: EvidenceKind
    """`knowledge` (cited as K1…) or `guide` (G1…)."""
    title: str
    root_cause: str
    """Why it happens: the entry's Root cause / Meaning, plain text, a few sentences."""
    steps: tuple[str, ...]
    """What to do: the Mitigation / Solution bullets, first ones first."""
    tips: tuple[str, ...]
    """How to keep it from happening again: the Prevention bullets."""
    score: float
    """Retrieval similarity of the entry to the pattern's evidence."""
    text: str
    """The entry's markdown (what the evidence context shows)."""


def _plain(text: str) -> str:
    text = _MARKUP.sub(lambda m: m.group(1) or "", text)
    return re.sub(r"\s+", " ", text).strip()


def _sentences(markdown: str, limit: int) -> str:
    """The first paragraph's sentences up to `limit` characters (fenced code left out)."""
    prose: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.strip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = _BULLET.match(line)
        prose.append(m.group(1) if m else line)
    text = _plain(" ".join(prose))
    out = ""
    for sentence in _SENTENCE_END.split(text):
        if out and len(out) + len(sentence) + 1 > limit:
            break
        out = f"{out} {sentence}".strip()
    return out[:limit].rstrip()


def _bullets(markdown: str, limit: int, chars: int = 200) -> tuple[str, ...]:
    """Top-level list items (continuation lines joined; nested code left out), at most `limit`."""
    items: list[str] = []
    fenced = False
    for line in markdown.splitlines():
        if line.strip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        if fenced:
            continue
        m = _BULLET.match(line)
        if m and not line.startswith((" " * 4, "\t")):
            items.append(m.group(1))
        elif items and line.strip() and line.startswith(" "):
            items[-1] += " " + line.strip()
    if not items:  # prose instead of a list: its sentences are the steps
        items = [s for s in _SENTENCE_END.split(_plain(markdown)) if s]
    cleaned = [_plain(i) for i in items]
    return tuple(c if len(c) <= chars else c[: chars - 1].rstrip() + "…" for c in cleaned if c)[:limit]


def _first(sections: dict[str, str], names: Sequence[str]) -> str:
    for name in names:
        body = sections.get(name, "").strip()
        if body:
            return body
    return ""


def candidate_from_entry(entry: dict[str, object], score: float) -> Candidate | None:
    """A candidate from a stored knowledge row (`Retrieval.knowledge_entry`); None when it says no cause."""
    text = str(entry.get("text") or "")
    parsed = parse_markdown(text, source=str(entry.get("source") or "entry.md"))
    if not parsed:
        return None
    sections = parsed[0].sections
    root = _sentences(_first(sections, _ROOT_SECTIONS), 400)
    steps = _bullets(_first(sections, _STEP_SECTIONS), MAX_STEPS)
    if not root or not steps:
        return None  # a note without a cause and a fix cannot be a diagnosis
    kind = EvidenceKind.guide if entry.get("kind") == "guide" else EvidenceKind.knowledge
    return Candidate(
        id=str(entry["id"]),
        kind=kind,
        title=str(entry.get("title") or entry["id"]),
        root_cause=root,
        steps=steps,
        tips=_bullets(_first(sections, _TIP_SECTIONS), MAX_TIPS) if _first(sections, _TIP_SECTIONS) else (),
        score=round(float(score), 4),
        text=text,
    )


def evidence_query(pattern: Pattern, events: Sequence[ErrorEvent]) -> str:
    """What the pattern's events say, as one retrieval query: type, template, then deciding lines."""
    parts = [f"{pattern.error_type}: {pattern.template}"]
    seen: set[str] = set()
    for ev in events[:5]:
        found = extract_evidence(f"{ev.error_message}\n{ev.stack_trace or ''}", max_lines=12)
        for line in found.lines:
            if line not in seen:
                seen.add(line)
                parts.append(line)
    return "\n".join(parts)[:QUERY_CHARS]


def find_candidates(
    retrieval: Retrieval, pattern: Pattern, events: Sequence[ErrorEvent], *, k: int = 5
) -> list[Candidate]:
    """The `k` knowledge/guide entries nearest the pattern's evidence, best first, as candidates."""
    hits = retrieval.search(evidence_query(pattern, events), k=1, knowledge_k=k)
    out: list[Candidate] = []
    for hit in hits:
        if hit.kind != "knowledge":
            continue
        entry = retrieval.knowledge_entry(hit.id)
        if entry is None:
            continue
        cand = candidate_from_entry(entry, hit.score)
        if cand is not None:
            out.append(cand)
    return sorted(out, key=lambda c: -c.score)
