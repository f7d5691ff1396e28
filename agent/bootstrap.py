"""Composition root shared by `serve`, `worker`, the CLI and the eval runner: builds the services."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.diagnose import Diagnoser
from agent.guide.service import Guide
from agent.llm.config import LLMConfig
from agent.recovery.service import Recovery, load_recovery_config
from agent.runtime import Runtime
from agent.service import Clock, Core, utcnow
from agent.settings import Settings
from agent.store.merges import merge_pass
from agent.store.retention import Retention
from agent.worker import Periodic, Worker

if TYPE_CHECKING:
    from agent.llm.providers import ModelRuntime
    from agent.retrieval.service import Retrieval


@dataclass
class Services:
    runtime: Runtime
    diagnoser: Diagnoser
    worker: Worker
    recovery: Recovery
    guide: Guide

    @property
    def core(self) -> Core:
        return self.runtime.core

    def start(self, *, worker: bool) -> Services:
        self.runtime.core.open()
        if worker:
            self.worker.start()
        return self

    def close(self, grace_s: float | None = None) -> bool:
        """Stop the worker, flush the writer, stop the model, within about `grace_s` (unbounded when None).

        True when everything stopped; False when a thread (a model call, llama.cpp) is still busy and only the
        process exit will end it (see `agent.shutdown`).
        """
        if grace_s is None:
            worker_ok = self.worker.stop()
            return self.runtime.close() and worker_ok
        deadline = time.monotonic() + grace_s
        worker_ok = self.worker.stop(timeout=max(0.1, grace_s * 0.4))
        return self.runtime.close(timeout=max(0.1, deadline - time.monotonic())) and worker_ok


def build_services(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    model_factory: Callable[[LLMConfig], ModelRuntime] | None = None,
    retrieval_factory: Callable[[Settings, Core], Retrieval] | None = None,
) -> Services:
    runtime = Runtime(settings, clock=clock, model_factory=model_factory, retrieval_factory=retrieval_factory)
    recovery = Recovery(
        runtime.core.engine,
        load_recovery_config(settings.recovery_config),
        clock=clock,
        dry_run=settings.recovery_dry_run,
    )
    diagnoser = Diagnoser(runtime, actions=recovery.action_infos, on_diagnosis=recovery.propose_from_diagnosis)
    runtime.core.pattern_hooks.append(diagnoser.enqueue_new_patterns)
    worker = Worker(
        runtime,
        handlers={"diagnose": diagnoser.handle_job},
        poll_s=settings.worker_poll_s,
        activity=runtime.core.ingest_activity,
        busy_share=settings.worker_busy_share,
    )
    worker.periodic.append(Periodic("recovery", 30, recovery.tick))
    worker.periodic.append(
        Periodic(
            "merge",
            settings.grouping_merge_every_s,
            lambda: merge_pass(settings, runtime.core.engine),
            defer_while_busy_s=60,
        )
    )
    guide = Guide(
        diagnoser,
        guide_path=settings.guide_path,
        match_similarity=settings.guide_match_similarity,
        max_model_calls_per_run=settings.learning_max_model_calls,
        stale_after=dt.timedelta(minutes=settings.learning_stale_minutes),
    )
    # learning (model calls) and retention (bulk deletes) wait out an ingest burst, for at most 10 minutes
    worker.periodic.append(Periodic("learning", 30, guide.learning.tick, defer_while_busy_s=600))
    # A manual run (POST /trigger-learning) starts within seconds, even during an ingest burst: one query a check.
    worker.periodic.append(Periodic("learning-manual", 2, lambda: guide.learning.tick(queued_only=True)))
    retention = Retention.from_settings(settings, runtime.core.engine, clock=clock)
    worker.periodic.append(
        Periodic(
            "retention",
            settings.retention_interval_minutes * 60,
            lambda: retention.run(max_seconds=60),
            defer_while_busy_s=600,
        )
    )
    return Services(runtime, diagnoser, worker, recovery, guide)
