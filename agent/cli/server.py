"""`errlearn version`, `serve`, `status` and `worker`: run the service or ask it how it is."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from agent import __version__
from agent.cli import common
from agent.cli.common import console


def version() -> None:
    """Print errlearn's version."""
    console.print(f"errlearn {__version__}")


def banner(host: str, port: int) -> str:
    """The start-up line. Printed with soft wrap: a terminal folds it, nothing inserts a newline inside a URL."""
    base = f"http://{host}:{port}"
    return f"errlearn {__version__} listening on {base}  (UI: {base}/ui, API docs: {base}/docs)"


def serve(
    host: Annotated[str | None, typer.Option(help="bind address (default: ERRLEARN_HOST or 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="port (default: ERRLEARN_PORT or 8090)")] = None,
    worker: Annotated[
        bool | None, typer.Option("--worker/--no-worker", help="run the background worker in this process")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            help="API processes (default: ERRLEARN_WORKERS; else the usable CPU cores with a Chroma server, 1 with embedded Chroma)",
        ),
    ] = None,
) -> None:
    """Run the HTTP API (ingest, search, diagnosis, guide, recovery) and its background worker."""
    import uvicorn

    from agent.api.app import configured_keys, create_app
    from agent.keys import load_or_create

    settings = common.settings()
    if worker is not None:
        settings = settings.model_copy(update={"worker": worker})
    common.setup_logging(settings)
    from agent.recovery.config import RecoveryConfigError
    from agent.recovery.service import load_recovery_config

    try:  # a bad allow-list must stop the start with a message naming the entry and field
        load_recovery_config(settings.recovery_config)
    except RecoveryConfigError as exc:
        common.fail(f"invalid recovery config {settings.recovery_config}: {exc}")
    ring, generated = load_or_create(settings.data_dir, configured_keys(settings))
    if generated is not None:
        console.print(f"[yellow]No API keys configured.[/] Generated keys are in [bold]{generated}[/] (mode 0600).")
        console.print("Set ERRLEARN_API_KEYS / ERRLEARN_ADMIN_KEY to use your own.")
    from agent.serve_workers import protocol_for, serve_many, usable_cores

    h = host or settings.host
    p = port or settings.port
    # Embedded Chroma lives in one process: several processes writing and reading its files disagree (and
    # fail with "Nothing found on disk"). Default to the cores only with a Chroma server (ERRLEARN_CHROMA_URL).
    n = workers or settings.workers or (usable_cores() if settings.chroma_url else 1)
    if n > 1 and not settings.chroma_url:
        console.print(
            "[yellow]Several processes with embedded Chroma:[/] set ERRLEARN_CHROMA_URL to a Chroma server "
            "(`chroma run`) so that they share one vector store."
        )
    console.print(banner(h, p), soft_wrap=True)
    if n > 1:
        console.print(f"{n} API processes" + (" and one background worker process" if settings.worker else ""))
        serve_many(settings, host=h, port=p, workers=n)
        return
    application = create_app(settings, keys=ring, freeze_heap=True)
    # log_config=None: uvicorn's own records (tracebacks too) go through our scrubbing, request-id handler.
    from agent.shutdown import exit_now_if_unclean, request_budget

    protocol = protocol_for(settings)

    uvicorn.run(
        application,
        host=h,
        port=p,
        log_level=settings.log_level.lower(),
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=max(1, round(request_budget(settings.shutdown_grace_s))),  # bounded (issue 15)
        http=protocol,  # header timeout and per-address connection cap (slow clients)
        timeout_keep_alive=settings.http_keep_alive_s,
    )
    exit_now_if_unclean(getattr(application.state, "shutdown_clean", True))


def _status_table(data: dict[str, Any]) -> Table:
    table = Table(title="errlearn status", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value")
    for key, value in data.items():
        table.add_row(key, json.dumps(value, default=str) if isinstance(value, dict | list) else str(value))
    return table


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
            common.fail(f"cannot reach {url}: {exc}")
        if resp.status_code != 200:
            common.fail(f"{url} answered {resp.status_code}: {resp.text[:300]}")
        data = resp.json()
    else:
        from agent.service import Core

        core = Core(common.settings())
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


def worker() -> None:
    """Run only the background worker (indexing, diagnosis, learning, recovery) — e.g. beside `serve --no-worker`."""
    from agent.shutdown import exit_now_if_unclean, stop_on_signals

    settings = common.settings()
    common.setup_logging(settings)
    metrics_server = None
    if settings.worker_metrics_port:
        from agent import metrics

        registry = metrics.install(metrics.Metrics())
        metrics_server = metrics.start_metrics_server(registry, settings.worker_metrics_port, settings.host)
    services = common.services(worker=True)
    stop = stop_on_signals()  # SIGTERM and SIGINT: a bounded close (issue 15)
    console.print("errlearn worker running (Ctrl-C to stop)")
    clean = False
    try:
        while not stop.wait(1.0):
            pass
    finally:
        clean = services.close(settings.shutdown_grace_s)
        if metrics_server is not None:
            metrics_server.stop()
    exit_now_if_unclean(clean)
