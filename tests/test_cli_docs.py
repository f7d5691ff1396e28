"""docs/cli.md is generated from --help; this fails when a command changed without regenerating it."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_current() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    import gen_cli_docs

    expected = gen_cli_docs.render()
    actual = (ROOT / "docs" / "cli.md").read_text()
    assert actual == expected, "docs/cli.md is stale: run .venv/bin/python scripts/gen_cli_docs.py"


def test_cli_version_and_bad_input() -> None:
    from typer.testing import CliRunner

    from agent.cli import app

    r = CliRunner().invoke(app, ["version"])
    assert r.exit_code == 0 and "errlearn" in r.output
    r = CliRunner().invoke(app, ["serve", "--port", "99999"])
    assert r.exit_code == 2
    r = CliRunner().invoke(app, ["similar"])
    assert r.exit_code == 2 and "PATTERN_ID or --text" in r.output
    r = CliRunner().invoke(app, ["ask", "x"])
    assert r.exit_code == 2 and "too short" in r.output
