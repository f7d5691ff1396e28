"""`errlearn guide …` and `errlearn learn` on the embedded defaults (SQLite in the data dir)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from agent.cli.guide import guide_app, learn_command
from agent.ingest.normalize import EventCreate
from agent.runtime import Runtime
from agent.settings import get_settings
from tests.test_guide_support import ScriptedModel

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()
    app.add_typer(guide_app, name="guide")
    app.command("learn")(learn_command)
    return app


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    guide_path = tmp_path / "docs" / "GUIDE.md"
    monkeypatch.setenv("ERRLEARN_GUIDE_PATH", str(guide_path))
    monkeypatch.setenv("ERRLEARN_REVIEWER", "erin")
    model = ScriptedModel()
    monkeypatch.setattr("agent.runtime.open_model", lambda _cfg: model.runtime())
    runtime = Runtime(get_settings())
    runtime.core.open()
    try:
        runtime.core.ingest_sync(
            [
                EventCreate(
                    service="api",
                    error_type="ConnectionRefusedError",
                    error_message="connection to db refused",
                    severity="high",
                ),
            ]
        )
    finally:
        runtime.close()
    return guide_path


def test_learn_then_review_from_the_command_line(cli_env: Path, tmp_path: Path) -> None:
    app = _app()
    learned = runner.invoke(app, ["learn"])
    assert learned.exit_code == 0, learned.output
    assert "1 drafts created (ERROR-001)" in learned.output

    listed = runner.invoke(app, ["guide", "list", "--status", "draft", "--json"])
    assert listed.exit_code == 0 and [e["id"] for e in json.loads(listed.output)] == ["ERROR-001"]
    shown = runner.invoke(app, ["guide", "show", "ERROR-001"])
    assert shown.exit_code == 0 and "connection to db refused" in shown.output and "drafted" in shown.output

    approved = runner.invoke(app, ["guide", "approve", "ERROR-001"])
    assert approved.exit_code == 0 and "ERROR-001 is now approved" in approved.output
    assert "## ERROR-001:" in cli_env.read_text()
    shown_json = json.loads(runner.invoke(app, ["guide", "show", "error-001", "--json"]).output)
    assert shown_json["entry"]["approved_by"] == "erin" and shown_json["metrics"]["before"]["events"] == 1

    again = runner.invoke(app, ["guide", "reject", "ERROR-001", "--reason", "too late"])
    assert again.exit_code == 1 and "superseded or merged" in again.output
    assert runner.invoke(app, ["guide", "approve", "ERROR-404"]).exit_code == 2
    assert "unchanged" in runner.invoke(app, ["guide", "render"]).output

    as_json = runner.invoke(app, ["learn", "--json"])
    assert as_json.exit_code == 0 and json.loads(as_json.output)["drafts_created"] == 0


def test_import_and_render_from_the_command_line(cli_env: Path, tmp_path: Path) -> None:
    app = _app()
    people = tmp_path / "people.md"
    people.write_text("## ERROR-020: Disk full\n\n**Solution:**\n- Free space.\n")
    imported = runner.invoke(app, ["guide", "import", str(people)])
    assert imported.exit_code == 0 and "imported 1: ERROR-020" in imported.output
    assert "## ERROR-020: Disk full" in cli_env.read_text()
    assert "drafts created (ERROR-021)" in runner.invoke(app, ["learn"]).output
    assert runner.invoke(app, ["guide", "import", str(tmp_path / "missing.md")]).exit_code == 2

    hand_written = tmp_path / "hand.md"
    hand_written.write_text("# Ours\n")
    refused = runner.invoke(app, ["guide", "render", "--path", str(hand_written)])
    assert refused.exit_code == 1 and hand_written.read_text() == "# Ours\n"
    forced = runner.invoke(app, ["guide", "render", "--path", str(hand_written), "--force"])
    assert forced.exit_code == 0 and "ERROR-020" in hand_written.read_text()
