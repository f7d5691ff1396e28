"""`errlearn recovery ...`: list actions, read proposals and the audit, approve or deny, dry runs.

Thin: builds the services from the settings, calls `agent.recovery.service.Recovery`, prints tables.
Registered in `agent/cli/__init__.py` with `app.add_typer(recovery_app, name="recovery")`.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent.recovery.status import ProposalStatus

if TYPE_CHECKING:  # the recovery stack loads only in the commands
    from agent.recovery.models import ProposalResult
    from agent.recovery.service import Recovery

recovery_app = typer.Typer(
    help="Guarded recovery actions: allow-list, proposals, approvals, dry runs, audit.", no_args_is_help=True
)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    line = Text("error: ", style="bold red")
    line.append(message)  # plain text: messages quote config and user input, never read them as markup
    err_console.print(line)
    raise typer.Exit(code)


@contextmanager
def _recovery() -> Iterator[Recovery]:
    from agent.bootstrap import build_services
    from agent.recovery.config import RecoveryConfigError
    from agent.recovery.service import Recovery, load_recovery_config
    from agent.settings import get_settings
    from agent.store.db import migrate

    try:
        settings = get_settings()
        services = build_services(settings)
    except (RecoveryConfigError, ValueError) as exc:
        _fail(str(exc))
        raise
    try:
        migrate(services.core.engine)
        recovery = getattr(services, "recovery", None)
        if not isinstance(recovery, Recovery):
            try:
                config = load_recovery_config(settings.recovery_config)
            except RecoveryConfigError as exc:
                _fail(str(exc))
                raise
            recovery = Recovery(
                services.core.engine, config, clock=services.runtime.clock, dry_run=settings.recovery_dry_run
            )
        yield recovery
    finally:
        services.close()


def _me() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _params(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            _fail(f"--param takes name=value, got {pair!r}")
        out[name] = value
    return out


def _result(result: ProposalResult) -> None:
    colour = {"refused": "red", "failed": "red", "skipped": "yellow", "duplicate": "yellow"}.get(result.status, "green")
    head = Text(result.status, style=f"bold {colour}")
    head.append(f" {result.action_id}" + (f" (proposal {result.proposal_id})" if result.proposal_id else ""))
    console.print(head)
    if result.argv:
        console.print(f"argv: {json.dumps(result.argv)}", markup=False)
    if result.reason:
        console.print(result.reason, markup=False)
    if result.output:
        console.print(result.output, markup=False)
    if result.status in ("refused", "failed"):
        raise typer.Exit(1)


def _cell(value: Any) -> Text:
    """A table cell as plain text: stored values may hold hostile text, never read it as rich markup."""
    if value is None:
        return Text("")
    if isinstance(value, list | dict):
        return Text(json.dumps(value))
    return Text(str(value))


def _row(table: Table, *values: Any) -> None:
    table.add_row(*(_cell(v) for v in values))


@recovery_app.command("list")
def list_actions() -> None:
    """The allow-listed actions: mode, argv template, limits and circuit breaker."""
    with _recovery() as recovery:
        table = Table(title="recovery actions")
        for col in ("id", "mode", "argv", "params", "conditions", "cooldown", "per hour", "breaker"):
            table.add_column(col)
        for a in recovery.actions():
            breaker = "OPEN" if a.breaker_open else f"{a.consecutive_failures}/{a.breaker_threshold}"
            _row(
                table,
                a.id,
                a.mode,
                a.argv,
                ", ".join(a.params),
                ", ".join(str(c.get("type")) for c in a.conditions),
                f"{a.cooldown_minutes:g} min",
                a.max_runs_per_hour,
                breaker,
            )
        console.print(table)


@recovery_app.command()
def proposals(
    status: Annotated[list[ProposalStatus] | None, typer.Option(help="only these statuses (repeatable)")] = None,
    pattern: Annotated[str | None, typer.Option(help="only proposals triggered by this pattern id")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
) -> None:
    """Proposals, newest first."""
    with _recovery() as recovery:
        rows = recovery.proposals(status=status or (), pattern_id=pattern, limit=limit)
        table = Table(title="recovery proposals")
        for col in ("id", "status", "action", "argv", "source", "pattern", "created", "note"):
            table.add_column(col)
        for p in rows:
            note = p.blocked_reason or p.note or p.outcome or ""
            _row(
                table,
                p.id,
                p.status.value,
                p.action_id,
                p.argv,
                p.source,
                p.pattern_id,
                p.created_at.isoformat(timespec="seconds"),
                note,
            )
        console.print(table)


@recovery_app.command()
def approve(proposal_id: int) -> None:
    """Approve a proposal; the worker runs it at its next recovery tick (limits still apply)."""
    from agent.recovery.service import ProposalNotFound

    with _recovery() as recovery:
        try:
            _result(recovery.approve(proposal_id, _me()))
        except ProposalNotFound:
            _fail(f"no proposal {proposal_id}")


@recovery_app.command()
def deny(proposal_id: int, reason: Annotated[str, typer.Option(help="why, for the audit")] = "denied") -> None:
    """Deny an open proposal."""
    from agent.recovery.service import ProposalNotFound

    with _recovery() as recovery:
        try:
            _result(recovery.deny(proposal_id, _me(), reason))
        except ProposalNotFound:
            _fail(f"no proposal {proposal_id}")


@recovery_app.command()
def run(
    action_id: str,
    param: Annotated[list[str] | None, typer.Option("--param", "-p", help="name=value (repeatable)")] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run/--execute", help="only check and record the argv (default), or run it")
    ] = True,
) -> None:
    """Check an action with parameters and show the exact argv; `--execute` proposes, approves and runs it."""
    with _recovery() as recovery:
        params = _params(param or [])
        if dry_run:
            _result(recovery.dry_run_action(action_id, params, _me()))
        else:
            _result(recovery.run_now(action_id, params, _me()))


@recovery_app.command()
def reset(action_id: str) -> None:
    """Reset an action's circuit breaker."""
    with _recovery() as recovery:
        try:
            recovery.reset_breaker(action_id, _me())
        except LookupError:
            _fail(f"no action {action_id!r}")
        console.print(f"circuit breaker of {action_id} reset", markup=False)


@recovery_app.command()
def audit(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50, offset: Annotated[int, typer.Option(min=0)] = 0
) -> None:
    """The audit of every decision, newest first."""
    with _recovery() as recovery:
        table = Table(title="recovery audit")
        for col in ("id", "at", "kind", "action", "proposal", "actor", "argv", "exit", "reason"):
            table.add_column(col)
        for e in recovery.audit(limit=limit, offset=offset):
            _row(
                table,
                e.id,
                e.at.isoformat(timespec="seconds"),
                e.kind.value,
                e.action_id,
                e.proposal_id,
                e.actor,
                e.argv,
                e.exit_code,
                e.reason,
            )
        console.print(table)


@recovery_app.command()
def outcomes(pattern_id: str) -> None:
    """What recovery runs did to a pattern's error rate."""
    with _recovery() as recovery:
        table = Table(title=f"recovery outcomes for {pattern_id}")
        for col in ("proposal", "action", "executed", "status", "before/min", "after/min", "note"):
            table.add_column(col)
        for o in recovery.outcomes_for_pattern(pattern_id):
            _row(
                table,
                o.proposal_id,
                o.action_id,
                o.executed_at.isoformat(timespec="seconds"),
                o.status,
                o.rate_before,
                o.rate_after,
                o.note,
            )
        console.print(table)
