"""Shared set-up for the UI tests: an app with the UI, guide and recovery wired to a scripted model, and seed data.

Imported by the other `test_ui_*` modules; the tests here check the helpers themselves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.bootstrap import Services
from agent.guide.models import GuideEntry, GuideStatus
from agent.ingest.normalize import EventCreate
from agent.recovery.models import Proposal
from agent.settings import Settings
from tests.conftest import ADMIN_KEY
from tests.diag_support import scripted, services_with, writing

STACK = """Traceback (most recent call last):
  File "/srv/api/app/db.py", line 42, in connect
    conn = pool.get()
  File "/srv/api/app/pool.py", line 17, in get
    raise ConnectionRefusedError(msg)
ConnectionRefusedError: connection to db-1:5432 refused
"""
ALIAS = re.compile(r"^\[([EPKG]\d+)\]", re.M)
RECOVERY_CONFIG: dict[str, Any] = {
    "services": ["api", "worker", "ai-orchestrator"],
    "actions": [
        {
            "id": "restart_service",
            "description": "Restart one service",
            "argv": ["/usr/bin/docker", "compose", "restart", "{service}"],
            "params": {"service": {"allowed_from": "services"}},
            "mode": "approve",
        },
        {
            "id": "advice_only",
            "description": "Advice, never approved",
            "argv": ["/usr/bin/true"],
            "mode": "propose",
        },
    ],
}


def model_answer(prompt: str) -> dict[str, Any]:
    """One scripted model for the three agents: guide drafts, chat answers, diagnoses. Each cites real aliases."""
    aliases = ALIAS.findall(prompt)
    events = [a for a in aliases if a.startswith("E")]
    if "guide entry" in prompt and "Write the" in prompt:
        header = re.search(r'service "([^"]+)":\n([^\n]+)', prompt)
        what = header.group(2).split(":")[0] if header else "An error"
        return {
            "title": f"{what} in {header.group(1) if header else 'a service'}",
            "description": "The service fails because a dependency is unreachable.",
            "root_cause": "The dependency is down or refuses connections.",
            "solution_steps": ["Check that the dependency is running.", "Retry the operation."],
            "prevention_tips": ["Add a health check for the dependency."],
            "commands": ["docker ps"],
            "evidence": aliases[:1],
        }
    if "Question:" in prompt:
        pattern = next((a for a in aliases if a.startswith("P")), None)
        cited = [pattern] if pattern else aliases[:1]
        return {
            "status": "answered",
            "answer": f"The api service cannot reach its database on port 5432 [{cited[0] if cited else 'P1'}].",
            "citations": cited,
        }
    return {
        "status": "diagnosed",
        "summary": "The service cannot reach a dependency.",
        "root_cause": "The dependency refuses connections.",
        "confidence": 0.8,
        "solution_steps": ["Start the dependency", "Check its address"],
        "prevention_tips": ["Add a readiness check"],
        "evidence": (events[:1] + [a for a in aliases if a.startswith("P")][:1]) or aliases[:1],
        "proposed_actions": [],
    }


@dataclass
class Wiring:
    """What the services factory wires besides the defaults (tests switch layers off)."""

    guide: bool = True
    recovery: bool = True
    services: list[Services] = field(default_factory=list)


def with_layers(settings: Settings) -> Settings:
    """Settings that give the guide a file in the data dir and recovery the test allow-list (dry run)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    config = settings.data_dir / "recovery.json"
    config.write_text(json.dumps(RECOVERY_CONFIG))
    return settings.model_copy(
        update={"guide_path": settings.data_dir / "GUIDE.md", "recovery_config": config, "recovery_dry_run": True}
    )


def make_services(settings: Settings, wiring: Wiring) -> Services:
    """The bootstrap's services on the scripted model; a layer switched off is removed (the page says so)."""
    services = services_with(writing(settings), scripted(model_answer))
    if not wiring.guide:
        services.guide = None  # type: ignore[assignment]
    if not wiring.recovery:
        services.recovery = None  # type: ignore[assignment]
    wiring.services.append(services)
    return services


def ui_app(settings: Settings, wiring: Wiring | None = None) -> FastAPI:
    """`create_app` with the UI installed (unless `create_app` already does it)."""
    from agent.api import ui

    wiring = wiring or Wiring()
    app = create_app(with_layers(settings), services_factory=lambda s: make_services(s, wiring))
    if not hasattr(app.state, "ui"):
        ui.install(app)
    return app


@dataclass
class Seeded:
    api: str
    """ConnectionRefusedError in api, with a stack trace: diagnosed, drafted, a proposal."""
    disk: str
    """OSError in worker."""
    ollama: str
    """ConnectionError in ai-orchestrator."""
    drafts: list[str]
    proposal: int
    advice: int
    """A proposal of a propose-only action: approving it is refused."""


def _events(service: str, error_type: str, message: str, n: int, severity: str, **extra: Any) -> list[EventCreate]:
    return [
        EventCreate(service=service, error_type=error_type, error_message=message, severity=severity, **extra)
        for _ in range(n)
    ]


def seed(services: Services) -> Seeded:
    """Events in three services, indexed, diagnosed, guide drafts, and two recovery proposals."""
    core = services.core
    core.ingest_sync(
        _events("api", "ConnectionRefusedError", "connection to db-1:5432 refused", 5, "high", stack_trace=STACK)
        + _events("worker", "OSError", "[Errno 28] No space left on device: '/var/data/x.bin'", 3, "critical")
        + _events("ai-orchestrator", "ConnectionError", "Failed to connect to Ollama at 127.0.0.1:11434", 4, "medium")
        + _events("api", "ValueError", "bad <script>alert(1)</script> value", 1, "low")
    )
    ids = {p.error_type: p.id for p in core.patterns(limit=50)[0]}
    services.worker.tick()  # index the patterns (real embedder, embedded Chroma)
    for pid in ids.values():
        services.diagnoser.diagnose(pid, force=True)
    guide: Any = services.guide
    guide.learning.run("test")  # the worker's periodic learning may have drafted some already
    drafts = [e.id for e in guide.entries(GuideStatus.draft)]
    recovery: Any = services.recovery
    proposal = recovery.propose(
        "restart_service", {"service": "api"}, source="manual", actor="test", pattern_id=ids["ConnectionRefusedError"]
    )
    advice = recovery.propose("advice_only", {}, source="manual", actor="test", pattern_id=ids["OSError"])
    return Seeded(
        api=ids["ConnectionRefusedError"],
        disk=ids["OSError"],
        ollama=ids["ConnectionError"],
        drafts=drafts,
        proposal=proposal.proposal_id,
        advice=advice.proposal_id,
    )


def entry(services: Services, ident: str) -> GuideEntry:
    found = services.guide.entry(ident)
    assert found is not None, ident
    return found


def proposal(services: Services, proposal_id: int) -> Proposal:
    found = services.recovery.proposal(proposal_id)
    assert found is not None, proposal_id
    return found


def login(client: TestClient, key: str = ADMIN_KEY, name: str = "alice") -> str:
    """Sign in through the form; returns the session's CSRF token (read from a page)."""
    page = client.get("/ui/login")
    token = csrf_of(page.text)
    r = client.post("/ui/login", data={"key": key, "name": name, "csrf_token": token, "next": "/ui"})
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/ui/ask").text)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


@pytest.fixture
def ui(settings: Settings) -> Iterator[tuple[TestClient, Services, Seeded]]:
    """A seeded app (SQLite and PostgreSQL) and a client that does not follow redirects."""
    wiring = Wiring()
    with TestClient(ui_app(settings, wiring), follow_redirects=False) as client:
        services = wiring.services[0]
        yield client, services, seed(services)


# -- the helpers' own tests ---------------------------------------------------------------------------


def test_model_answer_cites_aliases_it_was_shown() -> None:
    prompt = "Evidence:\n[E1] event ...\n[P1] pattern ...\n\nQuestion: why?"
    assert model_answer(prompt)["citations"] == ["P1"]
    assert model_answer("Evidence:\n[E1] x\n[P2] y\n")["evidence"] == ["E1", "P2"]
    drafted = model_answer('Error pattern pat_1 in service "api":\nOSError: disk\nWrite the guide entry for this.')
    assert drafted["title"] == "OSError in api"


def test_seed_wires_every_layer(ui: tuple[TestClient, Services, Seeded]) -> None:
    _client, services, seeded = ui
    assert len(seeded.drafts) == 4
    diagnosis = services.diagnoser.current(seeded.api)
    assert diagnosis is not None and diagnosis.status.value == "diagnosed"
    assert any(e.startswith("ev_") for e in diagnosis.evidence)
    assert seeded.proposal and seeded.advice
