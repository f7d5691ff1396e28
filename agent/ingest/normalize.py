"""Incoming event bodies: validation schema, size limits, scrubbing. Runs before anything is stored."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from agent.domain import EventKind, Severity
from agent.ingest.scrub import Scrubber

ServiceName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$"),
]


class EventCreate(BaseModel):
    """An error event as a service sends it (the seed's contract). Unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=False)

    service: ServiceName
    """Name of the service that failed: letters, digits, `.`, `_`, `-`; 1–64 characters."""
    context: Annotated[str, Field(max_length=4096)] = ""
    """What the service was doing (endpoint, job, command)."""
    error_type: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
    """Exception class or error kind, e.g. `ConnectionRefusedError`."""
    error_message: Annotated[str, StringConstraints(min_length=1)]
    """The error message; longer than the configured limit is truncated and marked."""
    severity: Severity
    """One of low, medium, high, critical."""
    stack_trace: str | None = None
    """Stack trace text; longer than the configured limit is truncated (head and tail kept) and marked."""
    additional_data: dict[str, Any] | None = None
    """Free-form JSON object; keys such as password, secret, token are scrubbed by name."""
    timestamp: dt.datetime | None = None
    """When the error happened (ISO 8601); default: when it was received."""
    kind: EventKind = EventKind.runtime
    """runtime (default), build, ci or job."""

    @field_validator("timestamp")
    @classmethod
    def _plausible_time(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        now = dt.datetime.now(dt.UTC)
        if value > now + dt.timedelta(days=1) or value < now - dt.timedelta(days=3650):
            raise ValueError("timestamp must be within the last 10 years and not more than a day ahead")
        return value.astimezone(dt.UTC)


class EventBatchCreate(BaseModel):
    errors: list[dict[str, Any]]
    """Events in the same shape as `POST /errors`; each is validated on its own."""


def _truncate_utf8(text: str, limit: int, *, keep_tail: int = 0) -> tuple[str, bool]:
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text, False
    tail = data[len(data) - keep_tail :] if keep_tail else b""
    head = data[: limit - len(tail)]
    marker = f"\n… [truncated {len(data) - len(head) - len(tail)} bytes by errlearn] …\n"
    return head.decode("utf-8", "ignore") + marker + tail.decode("utf-8", "ignore"), True


class Normalizer:
    """Turns a validated body into the scrubbed, bounded record that the writer stores."""

    def __init__(self, scrubber: Scrubber, *, max_stack_bytes: int, max_message_bytes: int) -> None:
        self.scrubber = scrubber
        self.max_stack_bytes = max_stack_bytes
        self.max_message_bytes = max_message_bytes

    def __call__(self, body: EventCreate, received_at: dt.datetime) -> dict[str, Any]:
        scrub = self.scrubber.text  # the server's scrubber caches per distinct string (CachedScrubber)
        message, msg_cut = _truncate_utf8(scrub(body.error_message), self.max_message_bytes)
        stack: str | None = None
        stack_cut = False
        if body.stack_trace:
            # Head and tail: Java prints the exception first, Python last; both ends matter.
            stack, stack_cut = _truncate_utf8(
                scrub(body.stack_trace), self.max_stack_bytes, keep_tail=self.max_stack_bytes // 4
            )
        extra: dict[str, Any] = self.scrubber.data(body.additional_data) if body.additional_data else {}
        if msg_cut:
            extra["errlearn_message_truncated"] = True
        return {
            "service": body.service,
            "context": scrub(body.context),
            "error_type": scrub(body.error_type),
            "error_message": message,
            "severity": body.severity.value,
            "kind": body.kind.value,
            "stack_trace": stack,
            "stack_truncated": stack_cut,
            "additional_data": extra,
            "timestamp": body.timestamp or received_at,
            "received_at": received_at,
        }
