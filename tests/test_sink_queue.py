"""The JSONL sink off the commit path: written by its own thread, drained on close, replayable from the database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
from typer.testing import CliRunner

EVENT = {"service": "billing", "error_type": "KeyError", "error_message": "'plan' missing", "severity": "low"}


def _lines(directory: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for p in sorted(directory.glob("*.jsonl*")) for line in p.read_text().splitlines()]


def test_sink_lines_are_written_after_the_commit_and_replay_rebuilds_them(client: Any, settings: Any) -> None:
    ids = [client.post("/errors", json={**EVENT, "error_message": f"'plan{i}' missing"}).json() for i in range(5)]
    core = client.app.state.core
    core.writer.sink.close()  # drains the sink thread's queue
    written = _lines(settings.sink_dir)
    assert [x["id"] for x in written] == [x["event_id"] for x in ids]
    assert all(x["service"] == "billing" for x in written)

    for p in settings.sink_dir.glob("*.jsonl*"):  # a crash that lost the sink's queue: the files are behind
        p.unlink()
    env = {"ERRLEARN_DATA_DIR": str(settings.data_dir), "ERRLEARN_DATABASE_URL": settings.resolved_database_url}
    from agent.cli import app
    from agent.settings import get_settings

    get_settings.cache_clear()
    r = CliRunner().invoke(app, ["sink", "replay", "--since", "2000-01-01T00:00:00"], env=env)
    assert r.exit_code == 0, r.output
    assert "replayed 5 events" in r.output
    replayed = _lines(settings.sink_dir)
    assert [x["id"] for x in replayed] == [x["id"] for x in written]
    assert [x["error_message"] for x in replayed] == [x["error_message"] for x in written]

    bad = CliRunner().invoke(app, ["sink", "replay", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2 and "--since must be an ISO 8601 time" in bad.output
