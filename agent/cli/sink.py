"""`errlearn sink replay`: re-write the JSONL sink files from the database (the source of truth).

The sink is written off the commit path, after the commit; lines queued when a process died are
recovered by replaying the events received since a point in time (e.g. a minute before the crash).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from agent.cli import common

sink_app = typer.Typer(help="The JSONL sink files (logs/errors/*.jsonl).", no_args_is_help=True)


def _when(value: str, option: str) -> dt.datetime:
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        common.fail(f"{option} must be an ISO 8601 time, e.g. 2026-12-03T07:00:00Z (got {value!r})")
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


@sink_app.command("replay")
def replay_command(
    since: Annotated[str, typer.Option(help="replay events received at or after this ISO 8601 time")],
    until: Annotated[str | None, typer.Option(help="and before this time (default: now)")] = None,
) -> None:
    """Append the stored events received in [--since, --until) to the sink files, oldest first."""
    from agent.store.db import make_engine
    from agent.store.sink import JsonlSink
    from agent.store.sink_queue import replay

    settings = common.settings()
    start = _when(since, "--since")
    end = _when(until, "--until") if until else None
    sink = JsonlSink(settings.sink_dir, max_bytes=settings.sink_max_bytes, backups=settings.sink_backups)
    engine = make_engine(settings.resolved_database_url)
    try:
        n = replay(engine, sink, start, end)
    finally:
        sink.close()
        engine.dispose()
    common.console.print(f"replayed {n} events into {settings.sink_dir}")
