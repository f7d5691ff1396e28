"""`errlearn patterns merge|merges|unmerge`: the merge pass and its decisions, on the database directly.

Works while the server is down or up (the pass takes the same lock as the worker's). Registered in
`agent/cli/__init__.py` with `app.add_typer(patterns.patterns_app, name="patterns")`.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated

import typer

from agent.cli.common import console, fail, settings

if TYPE_CHECKING:  # the database stack loads only when the command runs
    from sqlalchemy import Engine

patterns_app = typer.Typer(help="Pattern merges: run the merge pass, list decisions, unmerge.", no_args_is_help=True)


@contextlib.contextmanager
def _engine() -> Iterator[Engine]:
    from agent.store.db import DatabaseUnavailable, make_engine, migrate

    s = settings()
    engine = make_engine(s.resolved_database_url, sqlite_synchronous=s.sqlite_synchronous)
    try:
        migrate(engine)
    except DatabaseUnavailable as exc:
        fail(str(exc))
    try:
        yield engine
    finally:
        engine.dispose()


@patterns_app.command("merge")
def merge_command() -> None:
    """Run the merge pass now (the worker runs it every `ERRLEARN_GROUPING_MERGE_EVERY_S`)."""
    from agent.store.merges import merge_pass

    with _engine() as engine:
        report = merge_pass(settings(), engine)
    console.print(f"groups {report.groups}, newly merged {report.merged}, events moved {report.moved_events}")


@patterns_app.command("merges")
def merges_command(
    pattern_id: Annotated[str, typer.Argument(help="a pattern id (pat_…)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The merge decisions that involve a pattern, with their reasons."""
    from agent.store.merges import aliases_of

    with _engine() as engine:
        rows = aliases_of(engine, pattern_id)
    if as_json:
        console.print_json(json.dumps(rows, default=str))
        return
    if not rows:
        console.print(f"no merge decisions involve {pattern_id}")
    for r in rows:
        console.print(f"{r['source_id']} -> {r['target_id']}  [{r['kind']}]  {r['reason']}", markup=False)


@patterns_app.command("unmerge")
def unmerge_command(pattern_id: Annotated[str, typer.Argument(help="the merged pattern's id (pat_…)")]) -> None:
    """Split a merged pattern off its target for good: its events come back, later events stay with it."""
    from agent.store.merges import NotMerged, UnknownPattern, unmerge

    with _engine() as engine:
        try:
            out = unmerge(engine, pattern_id, actor="admin-cli")
        except UnknownPattern:
            fail(f"pattern {pattern_id} not found", 1)
        except NotMerged as exc:
            fail(str(exc), 1)
    console.print(f"{out['pattern_id']} split from {out['split_from']}; {out['events_moved']} events moved back")
