"""The SDK's counters. Each field has one writer (the caller side under the queue lock, or the sender thread)."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(slots=True)
class Counters:
    captured: int = 0
    """Events put on the queue."""
    sent: int = 0
    """Events the server accepted."""
    rejected: int = 0
    """Events the server refused one by one inside an accepted batch (see the server's per-item errors)."""
    dropped_queue_full: int = 0
    """Oldest queued events pushed out by newer ones."""
    dropped_spool_full: int = 0
    """Spooled events deleted to make room (oldest batches first), or batches bigger than the spool."""
    sampled_out: int = 0
    """Events dropped by `sample_rate` or by per-type flood control."""
    spooled: int = 0
    """Events written to the on-disk spool (an event resent from the spool is counted again if it fails again)."""
    retries: int = 0
    """Repeated attempts at a batch after 429, 5xx or a connection error."""
    failed: int = 0
    """Events dropped for good: bad key (401/403), invalid body (400/422...), unrenderable, unwritable spool."""
    internal_errors: int = 0
    """Capture calls that failed inside the SDK (the event is lost; the application never sees the error)."""

    def snapshot(self) -> dict[str, int]:
        return asdict(self)
