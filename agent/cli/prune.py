"""`errlearn prune`: delete expired raw events and rotate the JSONL sinks (`--dry-run` only shows what would go).

Works on the database directly (like `errlearn status` without --url), so it also runs while the server is down;
with the server up it is safe too: it deletes in short batches. Registered in `agent/cli/__init__.py` with `app.command("prune")(prune_command)`.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the database stack loads only when the command runs
    from agent.store.retention import PrunePlan, PruneReport, Retention, ServiceSlice
    from agent.store.sink_rotation import SinkAction, SinkPlan

console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def _when(value: dt.datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S")


def _services_table(title: str, slices: Sequence[ServiceSlice]) -> Table:
    table = Table(title=title)
    table.add_column("service")
    table.add_column("events", justify="right")
    table.add_column("oldest received (UTC)")
    table.add_column("newest received (UTC)")
    for s in slices:
        table.add_row(s.service, str(s.events), _when(s.oldest), _when(s.newest))
    return table


def _sinks_table(title: str, actions: Sequence[SinkAction]) -> Table:
    table = Table(title=title)
    for col in ("action", "file", "size", "why"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for a in actions:
        table.add_row(a.kind, a.path.name, _size(a.bytes), a.reason)
    return table


def _print_sinks(sinks: SinkPlan | None, *, dry_run: bool) -> None:
    if sinks is None:
        return
    console.print(
        f"JSONL sinks in {sinks.directory}: {_size(sinks.total_bytes)}; "
        f"{'would free' if dry_run else 'freed'} {_size(sinks.bytes_to_free)}, "
        f"{'would compress' if dry_run else 'compressed'} {_size(sinks.bytes_to_compress)}"
    )
    if sinks.actions:
        console.print(_sinks_table("sink files that would change" if dry_run else "sink files changed", sinks.actions))
    for error in sinks.errors:
        err_console.print(f"[yellow]sink:[/] {error}")


def _print_plan(plan: PrunePlan, retention: Retention) -> None:
    console.print("[bold]Dry run[/]: nothing is deleted.")
    if plan.cutoff is None:
        console.print("Event retention is off (retention days = 0): no event expires.")
    else:
        console.print(
            f"Events received before {_when(plan.cutoff)} UTC expire ({retention.days:g} days); "
            f"the newest {retention.keep_samples} of each pattern are kept."
        )
        console.print(_services_table(f"{plan.events} events would be deleted", plan.services))
        console.print(
            f"kept although expired: {plan.kept_samples} as pattern samples, {plan.kept_referenced} referenced "
            f"(diagnoses, guide, recovery); pattern samples to repoint: {plan.samples_to_repoint}"
        )
    _print_sinks(plan.sinks, dry_run=True)


def _print_report(report: PruneReport) -> None:
    if report.cutoff is None:
        console.print("Event retention is off (retention days = 0): no event expires.")
    else:
        console.print(_services_table(f"{report.deleted} events deleted in {report.batches} batches", report.services))
        console.print(
            f"kept although expired: {report.kept_samples} as pattern samples, {report.kept_referenced} referenced; "
            f"pattern samples repointed: {report.repointed}"
        )
    _print_sinks(report.sinks, dry_run=False)


def prune_command(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="show what would go; delete nothing")] = False,
    days: Annotated[
        float | None,
        typer.Option(min=0, help="keep events this many days (default: ERRLEARN_RETENTION_DAYS; 0: forever)"),
    ] = None,
    keep_samples: Annotated[
        int | None,
        typer.Option(min=1, help="newest events kept per pattern (default: ERRLEARN_RETENTION_KEEP_SAMPLES)"),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Delete expired raw events (patterns, diagnoses, guide entries and counters stay) and rotate the JSONL sinks."""
    from agent.settings import get_settings
    from agent.store.db import DatabaseUnavailable, make_engine, migrate
    from agent.store.retention import PrunePlan, Retention

    try:
        settings = get_settings()
    except Exception as exc:  # pydantic ValidationError: show which setting is wrong
        _fail(f"invalid settings: {exc}")
        return
    engine = make_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        migrate(engine)
        retention = Retention.from_settings(settings, engine, clock=lambda: dt.datetime.now(dt.UTC))
        if days is not None:
            retention.days = days
        if keep_samples is not None:
            retention.keep_samples = keep_samples
        result: PrunePlan | PruneReport = retention.plan() if dry_run else retention.run()
    except DatabaseUnavailable as exc:
        _fail(str(exc))
        return
    finally:
        engine.dispose()
    if as_json:
        sys.stdout.write(json.dumps({"dry_run": dry_run, **result.as_dict()}, indent=2) + "\n")
    elif isinstance(result, PrunePlan):
        _print_plan(result, retention)
    else:
        _print_report(result)
