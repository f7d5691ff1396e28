"""Diagnosis and chat use cases: gather evidence, call the agent, check, store, cache."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import Connection, desc, func, select

from agent import metrics
from agent.domain import Diagnosis, ErrorEvent, EvidenceKind, Pattern
from agent.retrieval.service import SearchFilters
from agent.runtime import Runtime, llm_config
from agent.store import diagnoses, jobs, repo
from agent.store.jobs import Job
from agent.store.tables import EventRow, PatternRow, table_of

if TYPE_CHECKING:  # the model stack (pydantic-ai, openai, tiktoken) loads on first diagnosis
    from agent.diagnosis.candidates import Candidate
    from agent.llm.agents import ActionInfo, AgentDeps, AskResult
    from agent.llm.context import EvidenceContext, Retrieved
    from agent.llm.prompts import PromptLibrary

log = logging.getLogger(__name__)
EVENTS = table_of(EventRow)
PATTERNS = table_of(PatternRow)
PROMPT_OVERHEAD_TOKENS = 450
"""System prompt + schema + user template around the evidence (measured with tiktoken, rounded up)."""


@dataclass(frozen=True)
class DiagnoseOutcome:
    diagnosis: Diagnosis
    cached: bool


class PatternNotFound(LookupError):
    pass


class Diagnoser:
    def __init__(
        self,
        runtime: Runtime,
        *,
        prompts: PromptLibrary | None = None,
        actions: Callable[[], Sequence[ActionInfo]] | None = None,
        on_diagnosis: Callable[[Diagnosis], object] | None = None,
    ) -> None:
        self.runtime = runtime
        self.settings = runtime.settings
        self._prompts = prompts
        self.actions = actions or (lambda: ())
        self.on_diagnosis = on_diagnosis
        self.calls = 0
        """Model calls made by this process (the benchmark reports calls per 10k events)."""

    # -- wiring ---------------------------------------------------------------------------------
    @property
    def prompts(self) -> PromptLibrary:
        if self._prompts is None:
            from agent.llm.prompts import PromptLibrary

            self._prompts = PromptLibrary()
        return self._prompts

    def deps(self) -> AgentDeps:
        from agent.llm.agents import AgentDeps
        from agent.llm.providers import model_settings

        rt = self.runtime.model()
        return AgentDeps(
            model=rt.model,
            model_name=rt.name,
            prompts=self.prompts,
            model_settings=model_settings(rt.config),
            min_confidence=self.settings.min_confidence,
            actions=tuple(self.actions()),
        )

    def enqueue_new_patterns(self, conn: Connection, new_ids: list[str], _changed: list[str]) -> None:
        """Writer hook: every new pattern gets one diagnosis job (in the same transaction)."""
        if not self.settings.diagnose_new_patterns:
            return
        now = self.runtime.clock()
        for pid in new_ids:
            jobs.enqueue(conn, "diagnose", pid, now, delay_s=2.0)

    def handle_job(self, job: Job) -> None:
        self.diagnose(job.key, force=bool(job.payload.get("force")))

    def request(self, pattern_id: str, *, force: bool = True) -> bool:
        """Queue a (re-)diagnosis. False when one is already queued or running."""
        engine = self.runtime.core.engine
        with engine.begin() as conn:
            if repo.get_pattern(conn, pattern_id) is None:
                raise PatternNotFound(pattern_id)
            return jobs.enqueue(conn, "diagnose", pattern_id, self.runtime.clock(), payload={"force": force})

    # -- evidence -------------------------------------------------------------------------------
    def _budget(self) -> int:
        from agent.llm.context import prompt_budget

        cfg = llm_config(self.settings)
        return prompt_budget(cfg.context_tokens, cfg.max_output_tokens, PROMPT_OVERHEAD_TOKENS)

    def _retrieved_for_pattern(self, pattern: Pattern) -> list[Retrieved]:
        from agent.llm.context import Retrieved

        retrieval = self.runtime.retrieval()
        sims = retrieval.similar_to_pattern(pattern, k=4, knowledge_k=3)
        engine = self.runtime.core.engine
        with engine.connect() as conn:
            diag = diagnoses.current_for(conn, [s.id for s in sims if s.kind == "pattern"])
        out = []
        for s in sims:
            if s.kind == "pattern":
                text = f"similar earlier error: {s.document.replace(chr(10), ' | ')}"
                d = diag.get(s.id)
                if d is not None and d.status.value == "diagnosed":
                    text += f"\nits diagnosis: {d.root_cause}"
                out.append(Retrieved(EvidenceKind.pattern, s.id, s.score, text))
            else:
                entry = retrieval.knowledge_entry(s.id)
                body = entry["text"] if entry else s.document
                out.append(Retrieved(EvidenceKind.knowledge, s.id, s.score, f"{s.title}\n{body}"))
        return out

    def _pattern_and_events(self, pattern_id: str) -> tuple[Pattern, list[ErrorEvent]]:
        """The pattern and its 30 most recent events; PatternNotFound when there is no such pattern."""
        with self.runtime.core.engine.connect() as conn:
            pattern = repo.get_pattern(conn, pattern_id)
            if pattern is None:
                raise PatternNotFound(pattern_id)
            return pattern, repo.recent_events(conn, pattern_id, 30)

    def gather(self, pattern_id: str) -> tuple[Pattern, EvidenceContext]:
        from agent.llm.context import build_context

        pattern, events = self._pattern_and_events(pattern_id)
        ctx = build_context(
            events,
            self._retrieved_for_pattern(pattern),
            budget_tokens=self._budget(),
            min_similarity=self.settings.min_similarity,
        )
        return pattern, ctx

    def candidates(self, pattern_id: str) -> tuple[list[Candidate], bool]:
        """Known causes nearest the pattern's evidence (knowledge and approved guide entries), best first,
        and whether its events show a failure at all."""
        from agent.diagnosis.candidates import find_candidates
        from agent.diagnosis.paths import events_show_failure

        pattern, events = self._pattern_and_events(pattern_id)
        return find_candidates(self.runtime.retrieval(), pattern, events), events_show_failure(events)

    # -- diagnosis --------------------------------------------------------------------------------
    def current(self, pattern_id: str) -> Diagnosis | None:
        with self.runtime.core.engine.connect() as conn:
            return diagnoses.current(conn, pattern_id)

    def diagnose(self, pattern_id: str, *, force: bool = False) -> DiagnoseOutcome:
        """Diagnose a pattern unless its current diagnosis was made from the same evidence.

        Known causes first (no model), then the model's pick or its own writing: `agent.diagnosis.paths`.
        """
        from agent.diagnosis.paths import decide
        from agent.llm.context import evidence_hash

        pattern, ctx = self.gather(pattern_id)
        existing = self.current(pattern_id)
        if existing is not None and not force and existing.evidence_hash == evidence_hash(pattern, ctx):
            return DiagnoseOutcome(existing, cached=True)
        started = time.perf_counter()
        candidates, failure = self.candidates(pattern_id)
        decision = decide(pattern, ctx, candidates, self.settings, self.deps, failure=failure)
        result = decision.diagnosis
        if not decision.model_called:  # the known-cause path's time is retrieval and writing
            result.latency_ms = int((time.perf_counter() - started) * 1000)
        if decision.model_called:
            self.calls += 1
            metrics.record_llm_call("diagnosis", result)  # metrics
        engine = self.runtime.core.engine
        now = self.runtime.clock()
        with engine.begin() as conn:
            result.id = diagnoses.save(conn, result, now)
        result.created_at = now
        if self.on_diagnosis is not None:
            self.on_diagnosis(result)
        return DiagnoseOutcome(result, cached=False)

    # -- chat ----------------------------------------------------------------------------------
    def _services(self, conn: Connection) -> list[str]:
        return [r[0] for r in conn.execute(select(PATTERNS.c.service).distinct())]

    def mentioned_service(self, question: str) -> str | None:
        """A known service named in the question ("the orchestrator" → ai-orchestrator)."""
        with self.runtime.core.engine.connect() as conn:
            services = self._services(conn)
        words = set(re.findall(r"[a-z0-9]+", question.lower()))
        best: tuple[int, str] | None = None
        for s in services:
            parts = [p for p in re.split(r"[-_.]", s.lower()) if len(p) >= 4]
            hits = sum(1 for p in parts if p in words or p.rstrip("s") in words) + (
                3 if s.lower() in question.lower() else 0
            )
            if hits and (best is None or hits > best[0]):
                best = (hits, s)
        return best[1] if best else None

    def ask_context(self, question: str, service: str | None, since: dt.datetime | None) -> EvidenceContext:
        from agent.llm.context import Retrieved, build_context

        service = service or self.mentioned_service(question)
        engine = self.runtime.core.engine
        retrieval = self.runtime.retrieval()
        threshold = self.settings.min_similarity
        hits = retrieval.search(question, k=5, filters=SearchFilters(service=service, since=since), knowledge_k=3)
        with engine.connect() as conn:
            recent: list[str] = []
            if service:  # the service's busiest recent patterns count as relevant even if worded differently
                window = since or (self.runtime.clock() - dt.timedelta(days=7))
                n = func.count().label("n")
                recent = [
                    r.pattern_id
                    for r in conn.execute(
                        select(EVENTS.c.pattern_id, n)
                        .where(EVENTS.c.service == service, EVENTS.c.received_at >= window)
                        .group_by(EVENTS.c.pattern_id)
                        .order_by(desc(n))
                        .limit(3)
                    )
                ]
            pattern_ids = list(dict.fromkeys(recent + [h.id for h in hits if h.kind == "pattern"]))
            patterns = {p.id: p for p in repo.get_patterns(conn, pattern_ids)}
            diags = diagnoses.current_for(conn, pattern_ids)
            latest = {pid: repo.recent_events(conn, pid, 1) for pid in pattern_ids[:3]}
        scores = {h.id: h.score for h in hits}
        retrieved: list[Retrieved] = []
        for pid in pattern_ids:
            p = patterns.get(pid)
            if p is None:
                continue
            text = (
                f"error pattern in service {p.service}: {p.error_type}: {p.template} "
                f"({p.count} events, last seen {p.last_seen.isoformat(timespec='seconds')})"
            )
            d = diags.get(pid)
            if d is not None:
                text += f"\ndiagnosis ({d.status.value}): {d.root_cause}"
            score = max(scores.get(pid, 0.0), threshold) if pid in recent else scores.get(pid, 0.0)
            retrieved.append(Retrieved(EvidenceKind.pattern, pid, score, text))
        for h in hits:
            if h.kind == "knowledge":
                entry = retrieval.knowledge_entry(h.id)
                retrieved.append(
                    Retrieved(
                        EvidenceKind.knowledge, h.id, h.score, f"{h.title}\n{entry['text'] if entry else h.document}"
                    )
                )
        events = [e for evs in latest.values() for e in evs]
        return build_context(events, retrieved, budget_tokens=self._budget(), min_similarity=threshold, max_events=3)

    def chat_tools(self, ctx: EvidenceContext) -> list[Callable[..., str]]:
        """Read-only tools for the chat agent. Whatever they return joins `ctx` and becomes citable.

        None of them can change anything: they only read patterns, events, stats and knowledge.
        """
        from agent.domain import EvidenceKind

        core = self.runtime.core

        def search_patterns(query: str, service: str | None = None) -> str:
            """Search stored error patterns (and runbooks) by text; optionally only one service."""
            hits = self.runtime.retrieval().search(
                core.scrubber.text(query)[:2000], k=5, filters=SearchFilters(service=service)
            )
            lines = []
            for h in hits:
                kind = EvidenceKind.pattern if h.kind == "pattern" else EvidenceKind.knowledge
                alias = ctx.add(kind, h.id, h.document, h.score)
                lines.append(f"[{alias}] {h.kind} {h.id} (score {h.score:.2f}): {h.document.splitlines()[0][:200]}")
            return "\n".join(lines) or "no matches"

        def get_events(pattern_id: str, limit: int = 3) -> str:
            """The newest events of a pattern (id like pat_…)."""
            from agent.llm.context import event_text

            found = core.pattern_detail(pattern_id, max(1, min(limit, 5)))
            if found is None:
                return f"no pattern {pattern_id}"
            return "\n".join(f"[{ctx.add(EvidenceKind.event, e.id, event_text(e))}] {event_text(e)}" for e in found[1])

        def get_stats() -> str:
            """Counts of received and rejected events per service and severity."""
            s = core.stats()["since_start"]
            return f"received {s['received']}, rejected {s['rejected']}, by service {s['by_service']}"

        def get_guide_entry(entry_id: str) -> str:
            """A knowledge or guide entry by id (e.g. ERROR-001 or kb_…)."""
            entry = self.runtime.retrieval().knowledge_entry(entry_id)
            if entry is None:
                return f"no entry {entry_id}"
            alias = ctx.add(EvidenceKind.knowledge, entry_id, f"{entry['title']}\n{entry['text'][:1500]}")
            return f"[{alias}] {entry['title']}\n{entry['text'][:1500]}"

        return [search_patterns, get_events, get_stats, get_guide_entry]

    def _gate(
        self, answer: AskResult, question: str, service: str | None, ctx: EvidenceContext, deps: AgentDeps
    ) -> AskResult:
        """The quality gate on a model's answer: the ask prompt is what an echo repeats; quoting the
        evidence or the question is fine."""
        from agent.diagnosis.chat import gate_answer
        from agent.llm.agents import ask_prompts

        system, user = ask_prompts(question, service, ctx, deps)
        return gate_answer(answer, [system.text, user.text], [ctx.render(), question])

    def _known_cause_answer(self, ctx: EvidenceContext) -> AskResult | None:
        from agent.diagnosis.chat import known_cause_answer

        started = time.perf_counter()
        found = known_cause_answer(ctx, self.candidates, self.settings.known_cause_min_score)
        if found is None:
            return None
        return dataclasses.replace(found, latency_ms=int((time.perf_counter() - started) * 1000))

    def ask(self, question: str, *, service: str | None = None, since: dt.datetime | None = None) -> AskResult:
        """Known causes first (code writes the answer), else the model's answer through the quality gate."""
        from agent.llm.agents import answer_question

        ctx = self.ask_context(question, service, since)
        known = self._known_cause_answer(ctx)
        if known is not None:
            return known
        self.calls += 1
        deps = self.deps()
        if self.settings.llm_tools:
            deps.tools = self.chat_tools(ctx)
        answer = answer_question(question, service, ctx, deps)
        metrics.record_llm_call("ask", answer)  # metrics
        return self._gate(answer, question, service, ctx, deps)

    async def ask_stream(
        self, question: str, *, service: str | None = None, since: dt.datetime | None = None
    ) -> AsyncIterator[str | AskResult]:
        from agent.llm.agents import stream_answer

        # Evidence (database, embedder, Chroma) and a model start are blocking: keep them off the event loop.
        ctx = await asyncio.to_thread(self.ask_context, question, service, since)
        known = await asyncio.to_thread(self._known_cause_answer, ctx)
        if known is not None:
            yield known.answer
            yield known
            return
        deps = await asyncio.to_thread(self.deps)
        self.calls += 1
        async for piece in stream_answer(question, service, ctx, deps):
            if not isinstance(piece, str):  # metrics: the final AskResult, checked by the quality gate
                metrics.record_llm_call("ask", piece)
                piece = self._gate(piece, question, service, ctx, deps)
            yield piece
