"""Composition root shared by `serve`, `worker`, the CLI and the eval runner: builds the services."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agent.diagnose import Diagnoser
from agent.llm.config import LLMConfig
from agent.runtime import Runtime
from agent.service import Clock, Core, utcnow
from agent.settings import Settings
from agent.worker import Worker

if TYPE_CHECKING:
    from agent.llm.providers import ModelRuntime
    from agent.retrieval.service import Retrieval


@dataclass
class Services:
    runtime: Runtime
    diagnoser: Diagnoser
    worker: Worker

    @property
    def core(self) -> Core:
        return self.runtime.core

    def start(self, *, worker: bool) -> Services:
        self.runtime.core.open()
        if worker:
            self.worker.start()
        return self

    def close(self) -> None:
        self.worker.stop()
        self.runtime.close()


def build_services(
    settings: Settings,
    *,
    clock: Clock = utcnow,
    model_factory: Callable[[LLMConfig], ModelRuntime] | None = None,
    retrieval_factory: Callable[[Settings, Core], Retrieval] | None = None,
) -> Services:
    runtime = Runtime(settings, clock=clock, model_factory=model_factory, retrieval_factory=retrieval_factory)
    diagnoser = Diagnoser(runtime)
    runtime.core.pattern_hooks.append(diagnoser.enqueue_new_patterns)
    worker = Worker(runtime, handlers={"diagnose": diagnoser.handle_job}, poll_s=settings.worker_poll_s)
    return Services(runtime, diagnoser, worker)
