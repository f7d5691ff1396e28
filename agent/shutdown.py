"""Bounded shutdown for `errlearn serve` and `errlearn worker` (SIGTERM and SIGINT).

The grace period (`ERRLEARN_SHUTDOWN_GRACE_S`) is split: the first half for requests in flight (uvicorn's
graceful shutdown), the second for the services (`Services.close`): the worker stops taking jobs, the writer
commits what it acknowledged, the model is stopped. A model call that does not return in time cannot be
interrupted from Python (llama.cpp runs in-process and its server joins the generation in flight); its job is
queued again and the process exits with `os._exit`, which ends llama.cpp's threads with it.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

log = logging.getLogger(__name__)


def request_budget(grace_s: float) -> float:
    """Seconds uvicorn waits for requests in flight after a signal."""
    return grace_s / 2


def services_budget(grace_s: float) -> float:
    """Seconds `Services.close` gets once the requests are done."""
    return grace_s / 2


def exit_now_if_unclean(clean: bool, code: int = 0) -> None:
    """After a bounded close that left a thread busy (a model call), exit without waiting for it.

    Everything acknowledged is committed by then; only work that will be retried is lost.
    """
    if clean:
        return
    log.warning("exiting with a model call still running; its job is queued again")
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def stop_on_signals() -> threading.Event:
    """An event set by SIGTERM or SIGINT (call from the main thread)."""
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop
