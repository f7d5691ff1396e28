"""What every `errlearn` command group shares: the consoles, failing with a message, settings and services."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, NoReturn

import typer
from rich.console import Console

if TYPE_CHECKING:
    from agent.bootstrap import Services
    from agent.settings import Settings

console = Console()
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `error: message` on stderr and exit with `code` (2: a usage or configuration error)."""
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def settings() -> Settings:
    """The settings, or a clear exit naming the setting that is wrong."""
    from agent.settings import get_settings

    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError: show which setting is wrong
        fail(f"invalid settings: {exc}")


def setup_logging(settings: Settings) -> None:
    from agent.logs import configure_logging

    configure_logging(level=settings.log_level, json_format=settings.log_json)


def services(*, worker: bool = False) -> Services:
    """Build and start the services from the settings (the worker, and the ingest buffer's consumer, only when asked)."""
    from agent.bootstrap import build_services

    return build_services(settings()).start(worker=worker, consume=worker)


def since(value: str | None) -> dt.datetime | None:
    """Parse a `--since` ISO 8601 time; naive times are UTC."""
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        fail(f"--since must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z (got {value!r})")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
