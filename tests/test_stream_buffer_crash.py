"""SIGKILL of an `errlearn serve` process mid-stream with the Redis ingest buffer on loses no acknowledged event.

A real server process (tests.support.LiveServer) acknowledges batches into a real Redis stream while its
consumer stores them; it is SIGKILLed under load. A second server on the same database claims what the dead
consumer held (XAUTOCLAIM) and stores it: every acknowledged event ends up stored, and none twice
(`tests.redis_support.buffered_crash_once`, which `bench/stream_buffer.py --crash-rounds` repeats).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.redis_support import buffered_crash_once, redis_server


@pytest.mark.slow
def test_sigkill_of_a_serving_process_loses_no_acknowledged_event(tmp_path: Path, database_url: str) -> None:
    with redis_server(tmp_path) as rs:
        result = buffered_crash_once(tmp_path / "data", rs, database_url)
    assert result.acked >= 300, "the server acknowledged too little before the kill"
    assert not result.missing, f"{result.missing} of {result.acked} acknowledged events are not stored"
    assert not result.changed, "a stored event differs from what was acknowledged"
    assert not result.doubled, "an event was stored twice"
    assert result.claimed >= result.held, "the dead consumer's entries were not claimed"
