"""`errlearn run -- CMD`: run a build/CI command and report its failure to errlearn."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Annotated

import typer

from agent.cli import common


def _local_server() -> tuple[Path, str, int]:
    """Data dir, host and port of a server started here; the defaults when the settings do not load."""
    try:
        from agent.settings import get_settings

        settings = get_settings()
    except Exception:  # never fail the build because of errlearn's settings
        return Path("./data"), "127.0.0.1", 8090
    return settings.data_dir, settings.host, settings.port


def run(
    command: Annotated[list[str], typer.Argument(help="the command and its arguments, after --")],
    service: Annotated[str | None, typer.Option(envvar="ERRLEARN_SERVICE", help="default: this folder's name")] = None,
    kind: Annotated[str, typer.Option(help="build, ci or job")] = "build",
    url: Annotated[
        str | None,
        typer.Option(
            envvar="ERRLEARN_URL", help="errlearn server (default: the local one on ERRLEARN_PORT, when it answers)"
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option(envvar="ERRLEARN_KEY", help="ingest key (default: the local data dir's keys.json)")
    ] = None,
    spool_dir: Annotated[
        str | None, typer.Option(envvar="ERRLEARN_SPOOL_DIR", help="where undeliverable events wait (default ~/.cache)")
    ] = None,
) -> None:
    """Run a build/CI command; pass its output through; report it to errlearn when it fails."""
    from agent.capture.runner import run_and_capture
    from agent.capture.send import EventSender
    from agent.capture.target import local_url, resolve

    if kind not in ("build", "ci", "job"):
        common.fail("--kind must be build, ci or job")
    if not command:
        common.fail("give the command after --, e.g. errlearn run -- make build")
    data_dir, host, port = _local_server()
    target = resolve(url, key, default_url=local_url(host, port), data_dir=data_dir)
    if target.note:
        sys.stderr.write(f"errlearn: {target.note}\n")  # plain: a wrapped line would break the URL in two
    sender = EventSender(target.url, target.key, spool_dir=Path(spool_dir) if spool_dir else None)
    result = run_and_capture(command, service=service or Path.cwd().name, kind=kind, send=sender)  # type: ignore[arg-type]
    if result.event is None:
        with contextlib.suppress(Exception):  # never fail the build because of errlearn
            sender.drain()
    raise typer.Exit(result.exit_code)
