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
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace

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


def _outside_fences(markdown: str) -> Iterator[str]:
    """The lines of `markdown` that are not inside a fenced code block (nor its fences)."""
    fenced = False
    for line in markdown.splitlines():
        if line.strip().startswith(("```", "~~~")):
            fenced = not fenced
        elif not fenced:
            yield line


def _sentences(markdown: str, limit: int) -> str:
    """The first paragraph's sentences up to `limit` characters (fenced code left out)."""
    prose: list[str] = []
    for line in _outside_fences(markdown):
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
    for line in _outside_fences(markdown):
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


_TOKEN = re.compile(r"[A-Za-z][A-Za-z0-9_]{3,}|\d{3,}")
_CAMEL_PART = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
_COMMON = frozenset(
    [
        "this",
        "that",
        "with",
        "from",
        "have",
        "when",
        "what",
        "then",
        "than",
        "into",
        "your",
        "they",
        "them",
        "their",
        "there",
        "which",
        "while",
        "where",
        "error",
        "errors",
        "failed",
        "fails",
        "fail",
        "failure",
        "line",
        "lines",
        "value",
        "values",
        "true",
        "false",
        "none",
        "null",
        "time",
        "info",
        "warning",
    ]
)


def _tokens(text: str) -> set[str]:
    """Lowercased words of 4+ letters and numbers of 3+ digits, CamelCase words also split into their parts."""
    out: set[str] = set()
    for m in _TOKEN.finditer(text):
        word = m.group(0)
        out.add(word.lower())
        out.update(p.lower() for p in _CAMEL_PART.findall(word) if len(p) >= 4)
    return out - _COMMON


def lexical_overlap(query: str, entries: Sequence[str]) -> list[float]:
    """Per entry, the IDF-weighted share of the query's distinctive words it contains (0 to 1).

    IDF comes from the entries being compared: a word every candidate shares tells them apart no
    more than a stopword does, a word only one of them holds (`OOMKilled`, `FailedScheduling`) does.
    """
    import math

    q = _tokens(query)
    docs = [_tokens(e) for e in entries]
    n = len(docs)
    weights = {t: math.log(1 + n / (1 + sum(t in d for d in docs))) for t in q}
    present = {t: w for t, w in weights.items() if any(t in d for d in docs)}
    total = sum(present.values())
    if not total:
        return [0.0] * n
    return [sum(w for t, w in present.items() if t in d) / total for d in docs]


LEXICAL_WEIGHT = 0.5
"""Share of a candidate's score from shared words; the rest is the embedding similarity."""
POOL = 12
"""Entries fetched by similarity before the re-ranking by shared words."""


def find_candidates(
    retrieval: Retrieval, pattern: Pattern, events: Sequence[ErrorEvent], *, k: int = 5
) -> list[Candidate]:
    """The `k` knowledge/guide entries nearest the pattern's evidence, best first, as candidates.

    Score: the embedding similarity blended with `lexical_overlap` (error names and codes that
    the entry's text shares with the evidence), so that an entry naming the exact error beats one
    that is only about the same topic.
    """
    query = evidence_query(pattern, events)
    hits = retrieval.search(query, k=1, knowledge_k=max(k, POOL))
    found: list[tuple[Candidate, str]] = []
    for hit in hits:
        if hit.kind != "knowledge":
            continue
        entry = retrieval.knowledge_entry(hit.id)
        if entry is None:
            continue
        cand = candidate_from_entry(entry, hit.score)
        if cand is not None:
            found.append((cand, f"{entry.get('title') or ''}\n{entry.get('text') or ''}"))
    overlaps = lexical_overlap(query, [text for _, text in found])
    out = [
        replace(c, score=round((1 - LEXICAL_WEIGHT) * c.score + LEXICAL_WEIGHT * o, 4))
        for (c, _), o in zip(found, overlaps, strict=True)
    ]
    return sorted(out, key=lambda c: -c.score)[:k]
