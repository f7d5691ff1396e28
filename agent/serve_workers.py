"""`errlearn serve --workers N`: N API processes on one port, one background worker beside them.

One process is GIL-bound; uvicorn's supervisor forks N identical API processes that share the
listening socket, each with its own event writer. The database keeps them consistent: PostgreSQL
by its transactions, SQLite by taking the write lock at the start of every writer transaction
(`BEGIN IMMEDIATE`, see `agent.store.db`), so the writers queue on the lock instead of failing.
The migrations run once here, before any child starts. The background worker (indexing,
diagnosis, learning) runs once in a process of its own, not N times: N copies of the embedder
would only compete for the same cores and memory.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from functools import cache
from typing import Any

from fastapi import FastAPI

from agent.settings import Settings, get_settings

log = logging.getLogger(__name__)
FACTORY = "agent.serve_workers:app_from_env"
PROTOCOL = "agent.serve_workers:GuardedProtocol"
"""The slow-client protocol of each API process, by import path: uvicorn pickles its config to start a child,
and a class built at run time does not pickle, so each child builds it from the settings it reads."""
HEALTHCHECK_TIMEOUT_S = 30


def usable_cores() -> int:
    """The CPU cores this process may run on (its affinity mask, which containers narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _die_with_parent(poll_s: float = 1.0) -> None:
    """SIGTERM this process once the supervisor is gone, even killed by SIGKILL: no orphaned API processes.

    (Not `prctl(PR_SET_PDEATHSIG)`: it fires when the parent *thread* that started the child exits,
    and uvicorn's supervisor starts and restarts children from threads.)
    """
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll_s)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="errlearn-parent-watch", daemon=True).start()


def protocol_for(settings: Settings) -> type[Any]:
    """uvicorn's HTTP protocol with this deployment's header timeout and per-address connection cap."""
    from agent.api.protocol import guarded_protocol

    return guarded_protocol(
        header_timeout_s=settings.http_header_timeout_s, max_per_address=settings.http_max_connections_per_address
    )


@cache
def _child_protocol() -> type[Any]:
    return protocol_for(get_settings())


def __getattr__(name: str) -> Any:
    """`GuardedProtocol` (see `PROTOCOL`), built once per process from the environment's settings."""
    if name == "GuardedProtocol":
        return _child_protocol()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def app_from_env() -> FastAPI:
    """The uvicorn factory each API process calls: settings from the environment the parent set."""
    from agent.api.app import create_app
    from agent.logs import configure_logging

    _die_with_parent()
    settings = get_settings()
    configure_logging(level=settings.log_level, json_format=settings.log_json)
    return create_app(settings, freeze_heap=True)


def _worker_main() -> None:
    """The background worker process (what `errlearn worker` runs), stopped by SIGTERM."""
    from agent.bootstrap import build_services
    from agent.logs import configure_logging

    _die_with_parent()
    settings = get_settings()
    configure_logging(level=settings.log_level, json_format=settings.log_json)
    services = build_services(settings).start(worker=True, consume=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        services.close()


def serve_many(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Run `workers` API processes (and the background worker once, when `settings.worker`)."""
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    from agent import listen
    from agent.shutdown import request_budget
    from agent.store.db import make_engine, migrate

    engine = make_engine(settings.resolved_database_url, sqlite_synchronous=settings.sqlite_synchronous)
    try:
        migrate(engine)  # once, before the children: N concurrent upgrades would race on the version table
    finally:
        engine.dispose()
    os.environ["ERRLEARN_WORKER"] = "false"  # the children read their settings from the environment
    background = None
    if settings.worker:
        background = multiprocessing.get_context("spawn").Process(
            target=_worker_main, name="errlearn-worker", daemon=False
        )
        background.start()
    try:
        config = uvicorn.Config(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=settings.log_level.lower(),
            access_log=False,
            log_config=None,
            # Each child: header timeout, keep-alive timeout and connection cap as one process has. The cap counts
            # per process (each has its own event loop), so one address may hold up to `workers` x the cap.
            http=PROTOCOL,
            timeout_keep_alive=settings.http_keep_alive_s,
            # A child answers the supervisor's pings only once its interpreter has imported errlearn, which on
            # a loaded machine takes longer than uvicorn's 5 s default: it would be killed and restarted forever.
            timeout_worker_healthcheck=HEALTHCHECK_TIMEOUT_S,
            timeout_graceful_shutdown=max(1, round(request_budget(settings.shutdown_grace_s))),  # as one process
        )
        # uvicorn.run(workers=N) with one difference: each API process listens on a SO_REUSEPORT socket of its
        # own (`agent.listen`), so the kernel spreads connections over the processes.
        try:
            sock = listen.bind(host, port)
        except OSError as exc:
            log.error("cannot listen on %s:%s: %s", host, port, exc)
            raise SystemExit(3) from exc
        bound = sock.getsockname()
        log.info("errlearn listening on http://%s:%s with %d API processes", bound[0], bound[1], workers)
        with sock, contextlib.suppress(KeyboardInterrupt):
            Multiprocess(config, sockets=[sock]).run()
    finally:
        if background is not None and background.is_alive():
            background.terminate()
            background.join(30)
