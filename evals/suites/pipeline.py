"""errlearn's real pipeline on a fresh temporary data dir, driven through its ingest API in-process.

`open_pipeline` builds the app exactly as `errlearn serve` does (`create_app` + `build_services`),
but with the worker off, a new SQLite database, embedded Chroma and JSONL sinks under a temporary
folder, fresh API keys, and no recovery allow-list (dry run). Suites post events over FastAPI's
`TestClient`, then call the services (retrieval, diagnoser) directly where the worker would.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.bootstrap import Services, build_services
from agent.keys import KeyRing
from agent.llm.config import LLMConfig
from agent.llm.providers import ModelRuntime
from agent.retrieval.knowledge import load_path
from agent.retrieval.service import Retrieval
from agent.settings import Settings

BATCH = 500
"""Events per `POST /errors/batch` (the API accepts up to `max_batch_items`)."""


@dataclass(frozen=True)
class Ingested:
    """What the API answered for one event."""

    status: str
    """`accepted` or `rejected`."""
    event_id: str | None = None
    pattern_id: str | None = None
    error: str | None = None


class IngestError(RuntimeError):
    """The ingest API answered a whole request with an unexpected status."""


@dataclass
class Pipeline:
    settings: Settings
    client: TestClient
    services: Services
    data_dir: Path
    _stack: ExitStack

    # -- ingest ------------------------------------------------------------------------------------
    def ingest(self, bodies: Sequence[dict[str, Any]]) -> list[Ingested]:
        """Post events in batches; one result per body, in order (rejected items do not stop the rest)."""
        out: list[Ingested] = []
        size = max(1, min(BATCH, self.settings.max_batch_items))
        for start in range(0, len(bodies), size):
            chunk = list(bodies[start : start + size])
            response = self.client.post("/errors/batch", json={"errors": chunk})
            if response.status_code not in (202, 422):
                raise IngestError(f"POST /errors/batch answered {response.status_code}: {response.text[:300]}")
            for item in response.json()["results"]:
                if item.get("status") == "accepted":
                    out.append(Ingested("accepted", item["event_id"], item["pattern_id"]))
                else:
                    out.append(Ingested("rejected", error=str(item.get("message") or item.get("code") or item)))
        return out

    def ingest_one(self, body: dict[str, Any]) -> tuple[Ingested, int, str]:
        """`POST /errors` for one event: the result, the HTTP status and the raw response text."""
        response = self.client.post("/errors", json=body)
        if response.status_code == 202:
            data = response.json()
            return Ingested("accepted", data["event_id"], data["pattern_id"]), 202, response.text
        return Ingested("rejected", error=response.text[:300]), response.status_code, response.text

    # -- the worker's jobs, run here on demand ----------------------------------------------------------
    def settle(self, ingested: Sequence[Ingested]) -> list[Ingested]:
        """Run the background merge pass as the worker would, then each event's pattern as stored now."""
        from sqlalchemy import select

        from agent.store.merges import merge_pass
        from agent.store.tables import EventRow, table_of

        engine = self.services.core.engine
        merge_pass(self.settings, engine)
        events = table_of(EventRow)
        ids = [r.event_id for r in ingested if r.event_id]
        final: dict[str, str] = {}
        with engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                final.update(conn.execute(select(events.c.id, events.c.pattern_id).where(events.c.id.in_(chunk))).all())
        return [
            Ingested(r.status, r.event_id, final.get(r.event_id, r.pattern_id), r.error) if r.event_id else r
            for r in ingested
        ]

    def retrieval(self) -> Retrieval:
        return self.services.runtime.retrieval()

    def index(self) -> int:
        """Embed every pattern that is new or changed (what the worker does between polls)."""
        retrieval = self.retrieval()
        total = 0
        while n := retrieval.index_pending():
            total += n
        return total

    def import_knowledge(self, path: Path) -> int:
        """Import a knowledge folder or file as `errlearn` would; returns the number of entries."""
        entries = load_path(path)
        if entries:
            self.retrieval().import_knowledge(entries, self.services.runtime.clock())
        return len(entries)

    def stop(self) -> None:
        """Shut the app down (services closed, files flushed); the data dir stays until the context exits."""
        self._stack.close()


@contextlib.contextmanager
def open_pipeline(
    base: Settings, *, model_factory: Callable[[LLMConfig], ModelRuntime] | None = None
) -> Iterator[Pipeline]:
    """A running errlearn on a fresh temporary data dir; everything is removed on exit.

    Args:
        base: the configured settings; storage settings are replaced so nothing the user has is touched.
        model_factory: replaces the configured model (the safety suite records prompts this way).
    """
    with tempfile.TemporaryDirectory(prefix="errlearn-eval-") as tmp:
        data_dir = Path(tmp) / "data"
        settings = base.model_copy(
            # NORMAL: a throw-away data dir needs no power-loss durability, and fsync per commit dominates.
            update={
                "data_dir": data_dir,
                "database_url": None,
                "chroma_url": None,
                "worker": False,
                "sqlite_synchronous": "NORMAL",
                # Never run a real command from an eval: no allow-list, dry run (the safety suite probes
                # the recovery layer with a recording runner instead).
                "recovery_config": None,
                "recovery_dry_run": True,
            }
        )
        ring = KeyRing((f"eval-ingest-{secrets.token_urlsafe(16)}",), f"eval-admin-{secrets.token_urlsafe(16)}")

        def services_factory(s: Settings) -> Services:
            return build_services(s, model_factory=model_factory)

        app = create_app(settings, keys=ring, services_factory=services_factory)
        stack = ExitStack()
        with stack:
            client = stack.enter_context(TestClient(app))
            client.headers["Authorization"] = f"Bearer {ring.admin}"
            yield Pipeline(settings, client, app.state.services, data_dir, stack)
