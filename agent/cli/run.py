"""`errlearn run -- CMD`: run a build/CI command and report its failure to errlearn."""

from __future__ import annotations

import contextlib
from typing import Annotated

import typer

from agent.cli import common


def run(
    command: Annotated[list[str], typer.Argument(help="the command and its arguments, after --")],
    service: Annotated[str | None, typer.Option(envvar="ERRLEARN_SERVICE", help="default: this folder's name")] = None,
    kind: Annotated[str, typer.Option(help="build, ci or job")] = "build",
    url: Annotated[
        str | None, typer.Option(envvar="ERRLEARN_URL", help="errlearn server, e.g. http://127.0.0.1:8090")
    ] = None,
    key: Annotated[str | None, typer.Option(envvar="ERRLEARN_KEY", help="ingest key")] = None,
    spool_dir: Annotated[
        str | None, typer.Option(envvar="ERRLEARN_SPOOL_DIR", help="where undeliverable events wait (default ~/.cache)")
    ] = None,
) -> None:
    """Run a build/CI command; pass its output through; report it to errlearn when it fails."""
    from pathlib import Path

    from agent.capture.runner import run_and_capture
    from agent.capture.send import EventSender

    if kind not in ("build", "ci", "job"):
        common.fail("--kind must be build, ci or job")
    if not command:
        common.fail("give the command after --, e.g. errlearn run -- make build")
    sender = EventSender(url, key, spool_dir=Path(spool_dir) if spool_dir else None)
    result = run_and_capture(command, service=service or Path.cwd().name, kind=kind, send=sender)  # type: ignore[arg-type]
    if result.event is None:
        with contextlib.suppress(Exception):  # never fail the build because of errlearn
            sender.drain()
    raise typer.Exit(result.exit_code)
