"""`errlearn guide …` and `errlearn learn`: thin wrappers over `agent.guide.service.Guide`.

They work on the database directly (like `errlearn status` without --url), so they also run while the server
is down. Registered in `agent/cli/__init__.py` with `app.add_typer(guide_app, name="guide")` and `app.command("learn")(learn_command)`.
"""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent.guide.status import GuideStatus

if TYPE_CHECKING:  # the guide stack (pydantic-ai, the model providers) loads only in the commands
    from agent.guide.service import Guide, ReviewOutcome

guide_app = typer.Typer(
    help="The error prevention guide: review drafts, render the file, import entries.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _default_reviewer() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name (containers): still say it was a person at the CLI
        return "cli"


Reviewer = Annotated[
    str | None, typer.Option("--by", envvar="ERRLEARN_REVIEWER", help="who reviews (default: your login name)")
]


@contextmanager
def _guide() -> Iterator[Guide]:
    from agent.diagnose import Diagnoser
    from agent.guide.service import Guide
    from agent.runtime import Runtime
    from agent.settings import get_settings
    from agent.store.db import DatabaseUnavailable, migrate

    try:
        settings = get_settings()
    except Exception as exc:  # pydantic ValidationError: show which setting is wrong
        _fail(f"invalid settings: {exc}")
        raise
    runtime = Runtime(settings)
    try:
        try:
            migrate(runtime.core.engine)
        except DatabaseUnavailable as exc:
            _fail(str(exc))
        yield Guide(Diagnoser(runtime))
    finally:
        runtime.close()


def _json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")


def _report(outcome: ReviewOutcome, verb: str) -> None:
    for e in outcome.entries:
        console.print(f"{e.id} is now [bold]{e.status.value}[/] ({verb})")
    if outcome.rendered:
        console.print("guide file updated")
    for w in outcome.warnings:
        err_console.print(f"[yellow]warning:[/] {w}")


@contextmanager
def _review_errors() -> Iterator[None]:
    from agent.guide.repo import ConcurrentChange, EntryNotFound
    from agent.guide.review import InvalidTransition

    try:
        yield
    except EntryNotFound as exc:
        _fail(f"no guide entry {exc}")
    except (InvalidTransition, ConcurrentChange) as exc:
        _fail(str(exc), code=1)


@guide_app.command("list")
def list_entries(
    status: Annotated[GuideStatus | None, typer.Option(help="only entries with this status")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """List guide entries (`--status draft` is the review queue)."""
    with _guide() as guide:
        entries = guide.entries(status)
    if as_json:
        _json([e.model_dump(mode="json") for e in entries])
        return
    table = Table(title=f"guide entries ({len(entries)})")
    for column in ("id", "status", "title", "patterns", "author", "updated"):
        table.add_column(column)
    for e in entries:
        pending = " +revision" if e.proposal is not None else ""
        table.add_row(
            e.id,
            e.status.value + pending,
            e.title,
            str(len(e.pattern_ids)),
            e.author.label,
            e.updated_at.isoformat(timespec="seconds"),
        )
    console.print(table)


@guide_app.command("show")
def show(
    entry_id: Annotated[str, typer.Argument(help="e.g. ERROR-001")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show an entry next to its evidence, linked patterns, history and prevention metric."""
    from rich.markdown import Markdown

    from agent.guide.render import render_entry

    with _guide() as guide:
        detail = guide.detail(entry_id)
    if detail is None:
        _fail(f"no guide entry {entry_id.upper()}")
        return
    e = detail.entry
    if as_json:
        _json(
            {
                "entry": e.model_dump(mode="json"),
                "evidence": detail.evidence,
                "patterns": detail.patterns,
                "revisions": [r.model_dump(mode="json") for r in detail.revisions],
                "metrics": detail.metrics,
            }
        )
        return
    console.print(f"[bold]{e.id}[/] {e.status.value} · revision {e.revision} · by {e.author.label}")
    console.print(Markdown(render_entry(e)))
    if e.proposal is not None:
        console.print(f"[bold]Drafted revision[/] by {e.proposal.author.label}, from {e.proposal.pattern_id}:")
        console.print(Markdown(render_entry(e.model_copy(update=e.proposal.content.model_dump()))))
    console.rule("evidence")
    for item in detail.evidence:
        console.print(f"[bold]{item['id']}[/] ({item['kind']})")
        console.print(item["text"] or "[dim](no longer stored)[/]", markup=False, highlight=False)
    console.rule("patterns")
    for p in detail.patterns:
        console.print(
            f"{p['id']} {p['service']}: {p['error_type']}: {p['template']} ({p['count']} events)",
            markup=False,
            highlight=False,
        )
    if detail.metrics:
        m = detail.metrics
        console.rule("prevention")
        console.print(
            f"before approval: {m['before']['events']} events, {m['before']['per_day']}/day; "
            f"after: {m['after']['events']} events, {m['after']['per_day']}/day"
        )
    console.rule("history")
    for r in detail.revisions:
        console.print(
            f"r{r.revision} {r.created_at.isoformat(timespec='seconds')} {r.action.value} by {r.author}"
            + (f": {r.reason}" if r.reason else ""),
            markup=False,
            highlight=False,
        )


@guide_app.command("approve")
def approve(entry_id: Annotated[str, typer.Argument(help="e.g. ERROR-001")], by: Reviewer = None) -> None:
    """Approve a draft (or a drafted revision); renders the guide file and indexes the entry."""
    with _guide() as guide, _review_errors():
        _report(guide.approve(entry_id, by=by or _default_reviewer()), "approved")


@guide_app.command("reject")
def reject(
    entry_id: Annotated[str, typer.Argument(help="e.g. ERROR-001")],
    reason: Annotated[str, typer.Option("--reason", "-r", help="why (kept with the rejection)")],
    by: Reviewer = None,
) -> None:
    """Reject a draft (or a drafted revision); the same evidence is not drafted from again."""
    if not reason.strip():
        _fail("give a reason with --reason")
    with _guide() as guide, _review_errors():
        _report(guide.reject(entry_id, by=by or _default_reviewer(), reason=reason.strip()), "rejected")


@guide_app.command("render")
def render(
    path: Annotated[Path | None, typer.Option(help="write here instead of ERRLEARN_GUIDE_PATH")] = None,
    force: Annotated[bool, typer.Option(help="overwrite a file without manual markers (kept as .bak)")] = False,
) -> None:
    """Render the approved entries into the guide file (the hand-written section is kept)."""
    from agent.guide.render import GuideFileNotManaged

    with _guide() as guide:
        target = path or guide.guide_path
        try:
            changed = guide.render(path=target, force=force)
        except GuideFileNotManaged as exc:
            _fail(str(exc), code=1)
            return
    console.print(f"{target}: {'updated' if changed else 'unchanged'}")


@guide_app.command("import")
def import_entries(
    path: Annotated[Path, typer.Argument(help="a Markdown file or folder with `## ERROR-XXX: Title` entries")],
    by: Reviewer = None,
) -> None:
    """Import entries written by people as approved entries, keeping their ids."""
    with _guide() as guide:
        try:
            report = guide.import_markdown(path, by=by or _default_reviewer())
        except (FileNotFoundError, ValueError) as exc:
            _fail(str(exc))
            return
    console.print(f"imported {len(report.imported)}: {', '.join(report.imported) or '-'}")
    if report.existing:
        console.print(f"already present (left unchanged): {', '.join(report.existing)}")
    if report.rendered:
        console.print("guide file updated")
    for w in report.warnings:
        err_console.print(f"[yellow]warning:[/] {w}")


def learn_command(
    as_json: Annotated[bool, typer.Option("--json", help="print the run report as JSON")] = False,
) -> None:
    """Run a learning pass now: draft guide entries for new and recurring patterns."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with _guide() as guide:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=err_console, transient=True, disable=as_json) as bar:
            task = bar.add_task("examining patterns", total=None)

            def progress(done: int, total: int, pattern_id: str) -> None:
                bar.update(task, completed=done, total=total, description=f"examining {pattern_id}")

            report = guide.learning.run("manual", progress=progress)
    if as_json:
        _json(report.model_dump(mode="json"))
    elif report.status == "busy":
        err_console.print(f"[yellow]{report.errors[0]}[/]: try again when it has finished")
    else:
        console.print(
            f"learning run #{report.run_id} {report.status}: {report.patterns_examined} patterns examined, "
            f"{report.drafts_created} drafts created ({', '.join(report.drafted_ids) or 'none'})"
        )
        if report.outcomes:
            console.print("outcomes: " + ", ".join(f"{k} {v}" for k, v in sorted(report.outcomes.items())))
        if report.deferred:
            console.print(f"{report.deferred} patterns left for the next run (per-run model call limit)")
        for err in report.errors:
            err_console.print(err, markup=False, style="red")
    if report.status != "finished":
        raise typer.Exit(1)
