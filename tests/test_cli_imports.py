"""The CLI starts at once: building the command list imports none of the heavy stacks.

Each check runs in a fresh interpreter, since this test process has long since imported everything.
"""

from __future__ import annotations

import json
import subprocess  # noqa: TID251 - each probe needs an interpreter that has not imported the stacks yet
import sys

import pytest

HEAVY = ("pydantic_ai", "chromadb", "litellm", "xllamacpp", "openai", "sqlalchemy", "fastapi", "uvicorn")


def _modules_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nsys.__stdout__.write('\\n' + json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in HEAVY)


def test_import_agent_cli_pulls_no_heavy_stack() -> None:
    modules = _modules_after("import agent.cli")
    assert "agent.cli.guide" in modules and "evals.cli" in modules  # the probe really loaded the command groups
    assert _heavy(modules) == []


@pytest.mark.parametrize("argv", [["--help"], ["version"], ["guide", "--help"], ["eval", "--help"]])
def test_help_and_version_pull_no_heavy_stack(argv: list[str]) -> None:
    code = f"import sys\nsys.argv = ['errlearn', *{argv!r}]\nfrom agent.cli import app\ntry:\n    app()\nexcept SystemExit:\n    pass"
    modules = _modules_after(code)
    assert "typer" in modules
    assert _heavy(modules) == []


def test_a_command_that_needs_the_stack_still_loads_it() -> None:
    # The guard above must be able to fail: the same probe sees the stack once a command imports it.
    modules = _modules_after("import agent.cli\nimport agent.guide.service")
    assert "pydantic_ai" in _heavy(modules)
