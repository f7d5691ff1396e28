"""errlearn's own logging: plain or JSON lines, with the request id when there is one, secrets scrubbed.

Every record that reaches errlearn's handler passes through :class:`ScrubFilter` first, so a key, token
or password that ends up in a log message, its arguments or a traceback is written as
``[REDACTED:<kind>]``, exactly as in stored events.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import logging
import sys
from typing import TextIO

import orjson

from agent.ingest.scrub import Scrubber

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


class RequestIdFilter(logging.Filter):
    """Puts the current request id (or "-") on every record as `request_id`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get() or "-"
        return True


class ScrubFilter(logging.Filter):
    """Replaces secrets in a record's message (after `%` formatting), traceback and stack before it is written.

    The message is formatted once here and stored back with no arguments, so that no handler can format the
    raw arguments again. Attach it to handlers (a logger's own filters do not see its children's records).
    """

    def __init__(self, scrubber: Scrubber | None = None) -> None:
        super().__init__()
        self.scrubber = scrubber or Scrubber()
        self._exc_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it for logging's own error report
            return True
        record.msg = self.scrubber.text(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exc_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.scrubber.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.scrubber.text(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info or record.exc_text:
            # exc_text first: ScrubFilter leaves the scrubbed traceback there.
            out["exc"] = record.exc_text or self.formatException(record.exc_info)  # type: ignore[arg-type]
        if record.stack_info:
            out["stack"] = record.stack_info
        return orjson.dumps(out).decode()


def make_handler(*, json_format: bool = False, stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) that adds the request id and scrubs secrets."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.addFilter(ScrubFilter())
    handler.setFormatter(JsonFormatter() if json_format else logging.Formatter(PLAIN_FORMAT))
    return handler


def configure_logging(*, level: str = "INFO", json_format: bool = False) -> None:
    root = logging.getLogger()
    root.handlers[:] = [make_handler(json_format=json_format)]
    root.setLevel(level.upper())
