"""Evidence for a model, fitted to its context window.

Each item gets a short alias (E1 for events, P1 for similar patterns, K1 for knowledge, G1 for guide
entries) that the model cites; code maps aliases back to real ids and drops anything else.
Order of admission: the newest distinct events of the pattern first, then retrieved items by
score, interleaved, until the token budget is spent.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from agent.domain import ErrorEvent, Evidence, EvidenceKind, Pattern
from agent.ingest.stacktrace import in_app_frames
from agent.ingest.template import first_line, mask
from agent.llm.tokens import count_tokens, truncate_to_tokens

PREFIX = {EvidenceKind.event: "E", EvidenceKind.pattern: "P", EvidenceKind.knowledge: "K", EvidenceKind.guide: "G"}


@dataclass(frozen=True)
class Retrieved:
    """A retrieved item offered as evidence (a similar pattern, a knowledge or guide entry)."""

    kind: EvidenceKind
    id: str
    score: float
    text: str


@dataclass
class EvidenceContext:
    items: list[Evidence] = field(default_factory=list)
    tokens: int = 0
    dropped: int = 0
    """Items that did not fit the budget or fell below the similarity threshold."""

    def add(self, kind: EvidenceKind, item_id: str, text: str, score: float | None = None) -> str:
        """Add an item found during the run (a tool result); returns its alias (existing one if present)."""
        for item in self.items:
            if item.id == item_id:
                return item.alias
        n = sum(1 for i in self.items if i.kind is kind) + 1
        alias = f"{PREFIX[kind]}{n}"
        self.items.append(Evidence(alias=alias, kind=kind, id=item_id, text=text, score=score))
        return alias

    def resolve(self, citation: str) -> Evidence | None:
        """An alias (`E1`, `[K2]`) or a real id that was in the context; None otherwise."""
        key = citation.strip().strip("[]()").strip()
        for item in self.items:
            if key.upper() == item.alias or key == item.id:
                return item
        return None

    @property
    def retrieved(self) -> list[Evidence]:
        return [i for i in self.items if i.kind is not EvidenceKind.event]

    def render(self) -> str:
        return "\n\n".join(f"[{i.alias}] ({i.kind.value} {i.id}) {i.text}" for i in self.items)


def event_text(ev: ErrorEvent, *, max_message_tokens: int = 120) -> str:
    frames = in_app_frames(ev.stack_trace)
    lines = [
        f"{ev.timestamp.isoformat(timespec='seconds')} service={ev.service} severity={ev.severity.value} kind={ev.kind.value}",
        f"{ev.error_type}: {truncate_to_tokens(ev.error_message.strip(), max_message_tokens)}",
    ]
    if ev.context:
        lines.append(f"context: {truncate_to_tokens(ev.context, 40)}")
    if frames:
        lines.append("in-app frames (innermost first): " + " <- ".join(frames))
    return "\n".join(lines)


def distinct_events(events: Sequence[ErrorEvent], limit: int) -> list[ErrorEvent]:
    """Newest first, one per message shape + frames (repeats add tokens, not information)."""
    seen: set[str] = set()
    out: list[ErrorEvent] = []
    for ev in sorted(events, key=lambda e: e.received_at, reverse=True):
        shape = mask(first_line(ev.error_message)) + "|" + "|".join(in_app_frames(ev.stack_trace, 3))
        if shape in seen:
            continue
        seen.add(shape)
        out.append(ev)
        if len(out) >= limit:
            break
    return out


def build_context(
    events: Sequence[ErrorEvent],
    retrieved: Sequence[Retrieved],
    *,
    budget_tokens: int,
    min_similarity: float,
    max_events: int = 5,
    max_item_tokens: int = 260,
) -> EvidenceContext:
    ctx = EvidenceContext()
    counters = dict.fromkeys(PREFIX, 0)
    ev_items: list[tuple[EvidenceKind, str, float | None, str]] = [
        (EvidenceKind.event, e.id, None, event_text(e)) for e in distinct_events(events, max_events)
    ]
    relevant = sorted((r for r in retrieved if r.score >= min_similarity), key=lambda r: -r.score)
    ctx.dropped += len(retrieved) - len(relevant)
    ret_items: list[tuple[EvidenceKind, str, float | None, str]] = [(r.kind, r.id, r.score, r.text) for r in relevant]
    # Interleave: first two events, then alternate retrieved and remaining events.
    ordered: list[tuple[EvidenceKind, str, float | None, str]] = list(ev_items[:2])
    rest_ev, rest_ret = ev_items[2:], ret_items
    while rest_ev or rest_ret:
        if rest_ret:
            ordered.append(rest_ret.pop(0))
        if rest_ev:
            ordered.append(rest_ev.pop(0))
    for kind, item_id, score, text in ordered:
        text = truncate_to_tokens(text, max_item_tokens)
        cost = count_tokens(text) + 12
        if ctx.tokens + cost > budget_tokens:
            ctx.dropped += 1
            continue
        counters[kind] += 1
        ctx.items.append(
            Evidence(alias=f"{PREFIX[kind]}{counters[kind]}", kind=kind, id=item_id, text=text, score=score)
        )
        ctx.tokens += cost
    return ctx


def evidence_hash(pattern: Pattern, ctx: EvidenceContext) -> str:
    """Changes when the evidence changes materially: template, message shapes, retrieved items.

    Event ids are left out on purpose: a new occurrence of the same error is not new evidence.
    """
    parts = [pattern.error_type, pattern.template]
    for item in ctx.items:
        if item.kind is EvidenceKind.event:
            parts.append("E:" + mask(first_line(item.text.split("\n", 1)[-1])))
        else:
            parts.append(f"{item.kind.value}:{item.id}")
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


def prompt_budget(context_tokens: int, max_output_tokens: int, overhead_tokens: int) -> int:
    """Tokens left for evidence. tiktoken's count is not the model's own, so keep a 15 % margin."""
    return max(200, int((context_tokens - max_output_tokens - overhead_tokens) * 0.85))
