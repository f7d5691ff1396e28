"""`/recovery/*` routes (keys and admin) and the `errlearn recovery` CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from agent.api.app import create_app
from agent.bootstrap import Services, build_services
from agent.cli.recovery import recovery_app
from agent.recovery.service import Recovery
from agent.settings import Settings
from tests.conftest import INGEST_KEY, admin_headers
from tests.test_recovery_hostile import with_recovery_routes
from tests.test_recovery_support import RESTART, SERVICES, FakeClock, RecordingRunner, config, seed_pattern

CONFIG: dict[str, Any] = {"services": SERVICES, "actions": [RESTART, {**RESTART, "id": "advice", "mode": "propose"}]}


@pytest.fixture
def api(settings: Settings) -> Iterator[tuple[TestClient, Recovery, RecordingRunner]]:
    runner = RecordingRunner()
    holder: dict[str, Recovery] = {}

    def factory(s: Settings) -> Services:
        services = build_services(s)
        recovery = Recovery(services.core.engine, config(CONFIG), clock=FakeClock(), runner=runner, dry_run=False)
        services.recovery = recovery  # type: ignore[attr-defined]  # until bootstrap wires Services.recovery
        holder["r"] = recovery
        return services

    with TestClient(with_recovery_routes(create_app(settings, services_factory=factory))) as client:
        client.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        yield client, holder["r"], runner


def test_routes_need_a_key_and_decisions_need_the_admin_key(api: tuple[TestClient, Recovery, RecordingRunner]) -> None:
    client, recovery, runner = api
    assert client.get("/recovery/actions", headers={"Authorization": ""}).status_code == 401
    actions = client.get("/recovery/actions").json()
    assert [a["id"] for a in actions] == ["restart_service", "advice"]
    assert actions[0]["argv"] == ["/usr/bin/docker", "compose", "restart", "{service}"]
    assert actions[0]["breaker_open"] is False

    proposed = recovery.propose("restart_service", {"service": "api"}, source="manual", actor="t")
    pid = proposed.proposal_id
    listed = client.get("/recovery/proposals", params={"status": "proposed"}).json()
    assert [p["id"] for p in listed] == [pid]
    assert client.get(f"/recovery/proposals/{pid}").json()["argv"][-1] == "api"
    assert client.get("/recovery/proposals/999").status_code == 404

    assert client.post(f"/recovery/proposals/{pid}/approve").status_code == 403
    assert client.get("/recovery/audit").status_code == 403
    assert (
        client.post(
            f"/recovery/proposals/{pid}/approve", headers=admin_headers(), json={"actor": "bad actor; rm"}
        ).status_code
        == 422
    )
    r = client.post(f"/recovery/proposals/{pid}/approve", headers=admin_headers(), json={"actor": "alice"})
    assert r.status_code == 200 and r.json()["status"] == "approved"
    again = client.post(f"/recovery/proposals/{pid}/approve", headers=admin_headers())
    assert again.status_code == 409 and again.json()["error"]["code"] == "refused"
    assert client.post("/recovery/proposals/999/approve", headers=admin_headers()).status_code == 404
    recovery.tick()
    assert runner.argvs == [["/usr/bin/docker", "compose", "restart", "api"]]

    audit = client.get("/recovery/audit", headers=admin_headers()).json()
    kinds = [e["kind"] for e in audit]
    assert kinds[:3] == ["executed", "refused", "approved"] and kinds[-1] == "proposed"
    assert audit[0]["argv"] == ["/usr/bin/docker", "compose", "restart", "api"] and audit[0]["exit_code"] == 0
    assert audit[2]["actor"] == "admin:alice"


def test_deny_reset_and_outcomes(api: tuple[TestClient, Recovery, RecordingRunner]) -> None:
    client, recovery, _ = api
    seed_pattern(recovery.engine, "pat_api", "api")
    pid = recovery.propose("advice", {"service": "db"}, source="manual", actor="t", pattern_id="pat_api").proposal_id
    refused = client.post(f"/recovery/proposals/{pid}/approve", headers=admin_headers())
    assert refused.status_code == 409 and "propose mode" in refused.json()["error"]["message"]
    assert client.post(f"/recovery/proposals/{pid}/deny", headers=admin_headers(), json={}).status_code == 422
    r = client.post(f"/recovery/proposals/{pid}/deny", headers=admin_headers(), json={"reason": "no"})
    assert r.json()["status"] == "denied"
    assert client.post("/recovery/actions/restart_service/reset", headers=admin_headers()).json()["status"] == "reset"
    assert client.post("/recovery/actions/nope/reset", headers=admin_headers()).status_code == 404
    assert client.post("/recovery/actions/restart_service/reset").status_code == 403
    assert client.get("/recovery/outcomes", params={"pattern_id": "pat_api"}).json() == []


def test_without_a_recovery_layer_the_routes_say_so(settings: Settings) -> None:
    def bare(s: Settings) -> Services:
        services = build_services(s)
        if hasattr(services, "recovery"):
            setattr(services, "recovery", None)  # noqa: B010
        return services

    with TestClient(with_recovery_routes(create_app(settings, services_factory=bare))) as client:
        r = client.get("/recovery/actions", headers={"Authorization": f"Bearer {INGEST_KEY}"})
    assert r.status_code == 503 and r.json()["error"]["code"] == "recovery_unavailable"


# -- CLI -------------------------------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "recovery.json"
    path.write_text(json.dumps(CONFIG))
    monkeypatch.setenv("ERRLEARN_RECOVERY_CONFIG", str(path))
    monkeypatch.setenv("ERRLEARN_DATABASE_URL", database_url)
    monkeypatch.setenv("ERRLEARN_WORKER", "false")
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps tables to the terminal width
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(recovery_app, list(args))


def test_cli_list_dry_run_approve_audit(cli_env: Path) -> None:
    listed = invoke("list")
    assert listed.exit_code == 0, listed.output
    assert "restart_service" in listed.output and "approve" in listed.output

    dry = invoke("run", "restart_service", "-p", "service=api")
    assert dry.exit_code == 0, dry.output
    assert 'argv: ["/usr/bin/docker", "compose", "restart", "api"]' in dry.output

    hostile = invoke("run", "restart_service", "-p", "service=api;reboot", "--dry-run")
    assert hostile.exit_code == 1 and "refused" in hostile.output and "';'" in hostile.output
    unknown = invoke("run", "[bold]rm -rf /[/]")
    assert unknown.exit_code == 1 and "unknown action id" in unknown.output

    executed = invoke("run", "restart_service", "-p", "service=db", "--execute")
    assert executed.exit_code == 0, executed.output
    assert "dry_run" in executed.output  # ERRLEARN_RECOVERY_DRY_RUN defaults to true: nothing ran

    proposals = invoke("proposals")
    assert proposals.exit_code == 0 and "dry_run" in proposals.output
    assert invoke("approve", "999").exit_code == 2
    audit = invoke("audit", "--limit", "20")
    assert audit.exit_code == 0
    for kind in ("dry_run", "refused", "approved", "proposed"):
        assert kind in audit.output
    assert invoke("reset", "restart_service").exit_code == 0
    assert invoke("reset", "nope").exit_code == 2
    assert invoke("reset", "[/]").exit_code == 2  # not read as rich markup


def test_cli_reports_an_invalid_config(cli_env: Path) -> None:
    cli_env.write_text(json.dumps({"auto_recovery": {"x": {"command": "rm -rf / ; reboot"}}}))
    result = invoke("list")
    assert result.exit_code == 2
    assert "auto_recovery.x.command" in result.output
