"""Chat (`/ask`, `errlearn ask`) on the same known-cause path and quality gate as diagnoses.

- A question about a pattern with a strong known cause is answered by code from that cause, citing the
  pattern (P1) and the entry (K1/G1): fast, and the same on every machine.
- Otherwise the model answers; an answer that echoes aliases or prompt text, or holds no content
  words, is turned into `inconclusive` with the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from agent.diagnosis.candidates import Candidate
from agent.diagnosis.gate import answer_problem
from agent.domain import EvidenceKind
from agent.llm.agents import AskResult
from agent.llm.context import EvidenceContext
from agent.llm.prompts import RenderedPrompt

MODEL_NAME = "known-cause"
MAX_ANSWER = 600
KNOWN_CAUSE_PROMPT = RenderedPrompt(name="known_cause/answer", version=1, sha256="0" * 64, text="")
"""Identity stored for answers written by code (no prompt was rendered)."""


def known_cause_answer(
    ctx: EvidenceContext,
    candidates_of: Callable[[str], tuple[list[Candidate], bool]],
    threshold: float,
    *,
    max_patterns: int = 3,
) -> AskResult | None:
    """An answer written from the strongest known cause of the patterns in `ctx`, or None."""
    patterns = [i for i in ctx.items if i.kind is EvidenceKind.pattern][:max_patterns]
    best: tuple[Candidate, str] | None = None
    for item in patterns:
        candidates, failure = candidates_of(item.id)
        if not failure or not candidates or candidates[0].score < threshold:
            continue
        if best is None or candidates[0].score > best[0].score:
            best = (candidates[0], item.alias)
    if best is None:
        return None
    cand, pattern_alias = best
    kb_alias = ctx.add(cand.kind, cand.id, f"{cand.title}\n{cand.text[:1500]}", cand.score)
    pattern = ctx.resolve(pattern_alias)
    assert pattern is not None
    headline = pattern.text.split("\n", 1)[0].removeprefix("error pattern in ")
    steps = " ".join(f"{n}. {s}" for n, s in enumerate(cand.steps[:2], start=1))
    answer = f"{headline} [{pattern_alias}]: {cand.title}. {cand.root_cause} What to do: {steps} [{kb_alias}]"
    return AskResult(
        status="answered",
        answer=answer[:MAX_ANSWER],
        citations=[pattern.id, cand.id],
        removed_citations=[],
        model=MODEL_NAME,
        prompt=KNOWN_CAUSE_PROMPT,
        input_tokens=0,
        output_tokens=0,
        latency_ms=0,
    )


def gate_answer(result: AskResult, prompt_texts: Sequence[str], quoted: Sequence[str]) -> AskResult:
    """The model's answer, or `inconclusive` with the reason when the quality gate refuses it."""
    if result.status != "answered":
        return result
    problem = answer_problem(result.answer, prompt_texts, quoted)
    if problem is None:
        return result
    return AskResult(
        status="inconclusive",
        answer=f"inconclusive: {problem}",
        citations=result.citations,
        removed_citations=result.removed_citations,
        model=result.model,
        prompt=result.prompt,
        input_tokens=result.input_tokens,
        output_tokens=result.output_tokens,
        latency_ms=result.latency_ms,
    )
