"""`errlearn` command line. Thin: parses, calls the core or the HTTP API, prints."""

from __future__ import annotations

import contextlib
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
    worker: Annotated[
        bool | None, typer.Option("--worker/--no-worker", help="run the background worker in this process")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=64, help="API processes (default: ERRLEARN_WORKERS or the usable CPU cores)"),
    ] = None,
) -> None:
    """Run the HTTP API (ingest, search, diagnosis, guide, recovery) and its background worker."""
    import uvicorn

    from agent.api.app import configured_keys, create_app
    from agent.keys import load_or_create

    settings = _settings()
    if worker is not None:
        settings = settings.model_copy(update={"worker": worker})
    _setup_logging(settings)
    from agent.recovery.config import RecoveryConfigError
    from agent.recovery.service import load_recovery_config

    try:  # a bad allow-list must stop the start with a message naming the entry and field
        load_recovery_config(settings.recovery_config)
    except RecoveryConfigError as exc:
        _fail(f"invalid recovery config {settings.recovery_config}: {exc}")
    ring, generated = load_or_create(settings.data_dir, configured_keys(settings))
    if generated is not None:
        console.print(f"[yellow]No API keys configured.[/] Generated keys are in [bold]{generated}[/] (mode 0600).")
        console.print("Set ERRLEARN_API_KEYS / ERRLEARN_ADMIN_KEY to use your own.")
    from agent.serve_workers import serve_many, usable_cores

    h = host or settings.host
    p = port or settings.port
    n = workers or settings.workers or usable_cores()
    console.print(f"errlearn {__version__} listening on http://{h}:{p}  (UI: http://{h}:{p}/ui, API docs: /docs)")
    if n > 1:
        console.print(f"{n} API processes" + (" and one background worker process" if settings.worker else ""))
        serve_many(settings, host=h, port=p, workers=n)
        return
    application = create_app(settings, keys=ring)
    # log_config=None: uvicorn's own records (tracebacks too) go through our scrubbing, request-id handler.
    uvicorn.run(application, host=h, port=p, log_level=settings.log_level.lower(), access_log=False, log_config=None)


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


def _services(*, worker: bool = False):  # type: ignore[no-untyped-def]
    from agent.bootstrap import build_services

    return build_services(_settings()).start(worker=worker)


@app.command()
def worker() -> None:
    """Run only the background worker (indexing, diagnosis, learning, recovery) — e.g. beside `serve --no-worker`."""
    import signal
    import threading

    settings = _settings()
    _setup_logging(settings)
    metrics_server = None
    if settings.worker_metrics_port:
        from agent import metrics

        registry = metrics.install(metrics.Metrics())
        metrics_server = metrics.start_metrics_server(registry, settings.worker_metrics_port, settings.host)
    services = _services(worker=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    console.print("errlearn worker running (Ctrl-C to stop)")
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        services.close()
        if metrics_server is not None:
            metrics_server.stop()


@app.command()
def reindex() -> None:
    """Rebuild the vector collections (patterns and knowledge) from the database."""
    from rich.progress import Progress

    services = _services()
    try:
        with Progress(console=console) as progress:
            task = progress.add_task("indexing patterns", total=None)
            n, k = services.runtime.retrieval().reindex(
                lambda done, total: progress.update(task, completed=done, total=total)
            )
        console.print(f"re-indexed {n} patterns and {k} knowledge entries")
    finally:
        services.close()


@app.command()
def similar(
    pattern_id: Annotated[str | None, typer.Argument(help="a pattern id (pat_…)")] = None,
    text: Annotated[str | None, typer.Option(help="free text instead of a pattern")] = None,
    k: Annotated[int, typer.Option(min=1, max=50)] = 5,
    service: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Show the most similar past patterns and knowledge entries."""
    from agent.retrieval.service import SearchFilters

    if bool(pattern_id) == bool(text):
        _fail("give a PATTERN_ID or --text (one of them)")
    services = _services()
    try:
        retrieval = services.runtime.retrieval()
        retrieval.index_pending(10_000)
        filters = SearchFilters(service=service)
        if pattern_id:
            pattern = services.core.pattern(pattern_id)
            if pattern is None:
                _fail(f"no pattern {pattern_id!r}")
                return
            hits = retrieval.similar_to_pattern(pattern, k=k, filters=filters)
        else:
            hits = retrieval.search(services.core.scrubber.text(text or ""), k=k, filters=filters)
        table = Table(title="similar")
        for col in ("score", "kind", "id", "title"):
            table.add_column(col)
        for h in hits:
            table.add_row(f"{h.score:.3f}", h.kind, h.id, h.title[:100])
        console.print(table)
    finally:
        services.close()


knowledge_app = typer.Typer(help="Runbooks and notes that diagnoses draw on.", no_args_is_help=True)
app.add_typer(knowledge_app, name="knowledge")


@knowledge_app.command("import")
def knowledge_import(path: Annotated[str, typer.Argument(help="a Markdown file or a folder of them")]) -> None:
    """Import Markdown runbooks / ERROR-XXX guide files into the knowledge base."""
    from pathlib import Path

    from agent.retrieval.knowledge import load_path

    p = Path(path)
    if not p.exists():
        _fail(f"{path} does not exist")
    try:
        entries = load_path(p)
    except ValueError as exc:
        _fail(str(exc))
        return
    services = _services()
    try:
        new, updated = services.runtime.retrieval().import_knowledge(entries, services.runtime.clock())
        console.print(f"{len(entries)} entries read from {path}: {new} new, {updated} updated")
    finally:
        services.close()


def _since(value: str | None):  # type: ignore[no-untyped-def]
    import datetime as dt

    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        _fail(f"--since must be an ISO 8601 time, e.g. 2026-01-31T12:00:00Z (got {value!r})")
        raise
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help='e.g. "why did the orchestrator fail?"')],
    service: Annotated[str | None, typer.Option()] = None,
    since: Annotated[str | None, typer.Option(help="ISO 8601 time")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Ask why something failed; the answer cites the events and patterns it relies on."""
    if len(question.strip()) < 3:
        _fail("the question is too short")
    services = _services()
    try:
        services.runtime.retrieval().index_pending(10_000)
        result = services.diagnoser.ask(services.core.scrubber.text(question), service=service, since=_since(since))
    except Exception as exc:
        _fail(f"{type(exc).__name__}: {exc}")
        return
    finally:
        services.close()
    if as_json:
        sys.stdout.write(
            json.dumps(
                {
                    "status": result.status,
                    "answer": result.answer,
                    "citations": result.citations,
                    "removed_citations": result.removed_citations,
                    "model": result.model,
                }
            )
            + "\n"
        )
        return
    console.print(f"[bold]{result.status}[/]: {result.answer}")
    for cid in result.citations:
        console.print(f"  cited: {cid}")


@app.command()
def diagnose(
    pattern_id: Annotated[str, typer.Argument(help="a pattern id (pat_…)")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Diagnose a pattern now (re-runs the model) and print the result."""
    from agent.diagnose import PatternNotFound

    services = _services()
    try:
        services.runtime.retrieval().index_pending(10_000)
        outcome = services.diagnoser.diagnose(pattern_id, force=True)
    except PatternNotFound:
        _fail(f"no pattern {pattern_id!r}")
        return
    except Exception as exc:
        _fail(f"{type(exc).__name__}: {exc}")
        return
    finally:
        services.close()
    d = outcome.diagnosis
    if as_json:
        sys.stdout.write(d.model_dump_json(indent=2) + "\n")
        return
    console.print(f"[bold]{d.status.value}[/] (confidence {d.confidence:.2f}) — {d.summary}")
    console.print(f"root cause: {d.root_cause}")
    for step in d.solution_steps:
        console.print(f"  • {step}")
    console.print(
        f"evidence: {', '.join(d.evidence) or '-'}   model: {d.model}   prompt: {d.prompt_name} v{d.prompt_version}"
    )


@app.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
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
        _fail("--kind must be build, ci or job")
    if not command:
        _fail("give the command after --, e.g. errlearn run -- make build")
    sender = EventSender(url, key, spool_dir=Path(spool_dir) if spool_dir else None)
    result = run_and_capture(command, service=service or Path.cwd().name, kind=kind, send=sender)  # type: ignore[arg-type]
    if result.event is None:
        with contextlib.suppress(Exception):  # never fail the build because of errlearn
            sender.drain()
    raise typer.Exit(result.exit_code)


from agent.cli_guide import guide_app, learn_command  # noqa: E402
from agent.cli_prune import prune_command  # noqa: E402
from agent.cli_recovery import recovery_app  # noqa: E402

app.add_typer(recovery_app, name="recovery")
app.add_typer(guide_app, name="guide")
app.command("learn")(learn_command)
app.command("prune")(prune_command)


def _register_eval() -> None:
    try:  # evals/ ships in the same wheel; a trimmed install without it simply has no `eval` command
        from evals.cli import eval_command
    except ImportError:  # pragma: no cover
        return
    app.command("eval")(eval_command)


_register_eval()


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    logging.basicConfig()
    main()
