"""`errlearn` command line. Thin: parses, calls the core or the HTTP API, prints."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent import __version__
from agent.settings import Settings, get_settings

app = typer.Typer(help="errlearn: learns from every error your services throw.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def _fail(message: str, code: int = 2) -> None:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def _settings() -> Settings:
    try:
        return get_settings()
    except Exception as exc:  # pydantic ValidationError: show which setting is wrong
        _fail(f"invalid settings: {exc}")
        raise


def _setup_logging(settings: Settings) -> None:
    from agent.logs import configure_logging

    configure_logging(level=settings.log_level, json_format=settings.log_json)


@app.command()
def version() -> None:
    """Print errlearn's version."""
    console.print(f"errlearn {__version__}")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default: ERRLEARN_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="port (default: ERRLEARN_PORT or 8090)")] = None,
) -> None:
    """Run the HTTP API (ingest, search, diagnosis, guide, recovery) and its background worker."""
    import uvicorn

    from agent.api.app import configured_keys, create_app
    from agent.keys import load_or_create

    settings = _settings()
    _setup_logging(settings)
    ring, generated = load_or_create(settings.data_dir, configured_keys(settings))
    if generated is not None:
        console.print(f"[yellow]No API keys configured.[/] Generated keys are in [bold]{generated}[/] (mode 0600).")
        console.print("Set ERRLEARN_API_KEYS / ERRLEARN_ADMIN_KEY to use your own.")
    application = create_app(settings, keys=ring)
    h = host or settings.host
    p = port or settings.port
    console.print(f"errlearn {__version__} listening on http://{h}:{p}  (API docs: http://{h}:{p}/docs)")
    uvicorn.run(application, host=h, port=p, log_level=settings.log_level.lower(), access_log=False)


def _status_table(data: dict[str, Any]) -> Table:
    table = Table(title="errlearn status", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    return table


@app.command()
def status(
    url: Annotated[str | None, typer.Option(help="a running server, e.g. http://127.0.0.1:8090")] = None,
    key: Annotated[str | None, typer.Option(envvar="ERRLEARN_KEY", help="API key for --url")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Show status: from a running server (--url) or straight from the database."""
    if url:
        import httpx

        try:
            resp = httpx.get(url.rstrip("/") + "/status", headers={"Authorization": f"Bearer {key or ''}"}, timeout=10)
        except httpx.HTTPError as exc:
            _fail(f"cannot reach {url}: {exc}")
            return
        if resp.status_code != 200:
            _fail(f"{url} answered {resp.status_code}: {resp.text[:300]}")
        data = resp.json()
    else:
        from agent.service import Core

        core = Core(_settings())
        try:
            from agent.store.db import migrate

            migrate(core.engine)
            data = core.status()
        finally:
            core.close()
    if as_json:
        sys.stdout.write(json.dumps(data, default=str, indent=2) + "\n")
    else:
        console.print(_status_table(data))


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    main()
