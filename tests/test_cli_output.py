"""What the CLI prints into pipes and logs: whole eval numbers, honest `--limit` help, a serve banner in one piece."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from fastapi import FastAPI
from rich.console import Console
from typer.testing import CliRunner

from evals.report import COLUMNS, print_report


def _grouping_report() -> dict[str, Any]:
    values = {c: 0.123456 + i for i, c in enumerate(COLUMNS["grouping"])}
    values["cases"] = 2000
    section = {
        "metrics": values,
        "by_kind": {"loghub": values},
        "by_source": {"loghub/OpenStack-long-source-name": values, "loghub/HDFS": values},
        "notes": [],
        "seconds": 1.0,
        "cases": 2000,
    }
    return {"suites": {"grouping": section}, "metrics": {"cases": 2000}, "seconds": 1.0}


def test_eval_tables_print_whole_numbers_when_stdout_is_not_a_terminal() -> None:
    out = io.StringIO()
    print_report(_grouping_report(), Console(file=out, width=80))
    text = out.getvalue()
    assert "…" not in text
    for value in ("1.123", "3.123", "8.123", "OpenStack-long-source-name"):
        assert value in text
    assert max(len(line) for line in text.splitlines()) > 80  # it really needed more than 80 columns


def test_eval_tables_still_fit_a_terminal() -> None:
    out = io.StringIO()
    print_report(_grouping_report(), Console(file=out, width=80, force_terminal=True))
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in out.getvalue().splitlines()) <= 80


def test_eval_limit_help_says_what_it_counts() -> None:
    from agent.cli import app

    result = CliRunner().invoke(app, ["eval", "--help"], env={"COLUMNS": "200"}, terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "a Defects4J bug (all its traces)" in text and "a Loghub line" in text
    assert "cases per source" not in text


def test_serve_banner_never_breaks_a_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import uvicorn

    import agent.api.app
    from agent.cli import app, server
    from agent.settings import get_settings

    out = io.StringIO()
    monkeypatch.setattr(server, "console", Console(file=out, width=40))
    monkeypatch.setattr(agent.api.app, "create_app", lambda settings, keys, **_: FastAPI())
    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: None)
    monkeypatch.setenv("ERRLEARN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("ERRLEARN_API_KEYS", "test-ingest-key-0123456789")
    monkeypatch.setenv("ERRLEARN_ADMIN_KEY", "test-admin-key-0123456789")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(app, ["serve", "--port", "18090", "--host", "127.0.0.1"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    (line,) = [x for x in out.getvalue().splitlines() if "listening on" in x]
    for url in ("http://127.0.0.1:18090", "http://127.0.0.1:18090/ui", "http://127.0.0.1:18090/docs"):
        assert url in line
