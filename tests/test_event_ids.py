"""Event ids are time-ordered and monotonic within a process, so "a pattern's most recent events" is one set.

Events of one batch share a `received_at`; `repo.recent_events` breaks the tie by id. With a random id
suffix inside a millisecond that tie-break was a coin toss, and the evidence (hence the known-cause score)
of the same recorded incident changed from run to run.
"""

from __future__ import annotations

from collections.abc import Iterator
from unittest import mock

import pytest

from agent import ids

_FUTURE_MS = 10**14
"""Later than any id this process has made yet (the generator only moves forward)."""


@pytest.fixture(autouse=True)
def _restore_generator() -> Iterator[None]:
    """Put the generator's state back, so the ids of later tests carry the real time again."""
    saved = ids._last_ms, ids._last_rand
    yield
    ids._last_ms, ids._last_rand = saved


def test_ids_made_in_one_millisecond_sort_in_creation_order() -> None:
    with mock.patch.object(ids, "_clock_ns", return_value=_FUTURE_MS * 1_000_000):
        made = [ids.new_ulid() for _ in range(5_000)]
    assert made == sorted(made)
    assert len(set(made)) == len(made)


def test_a_clock_that_steps_back_keeps_ids_increasing() -> None:
    times = iter([_FUTURE_MS + 2_000, _FUTURE_MS + 1_000, _FUTURE_MS + 1_000, _FUTURE_MS + 3_000])
    with mock.patch.object(ids, "_clock_ns", side_effect=lambda: next(times) * 1_000_000):
        made = [ids.new_ulid() for _ in range(4)]
    assert made == sorted(made)
    assert made[-1].startswith(f"{_FUTURE_MS + 3_000:012x}")


def test_a_used_up_millisecond_borrows_the_next_one() -> None:
    with mock.patch.object(ids, "_clock_ns", return_value=(_FUTURE_MS + 5_000) * 1_000_000):
        first = ids.new_ulid()
        with mock.patch.object(ids, "_last_rand", (1 << ids._RANDOM_BITS) - 1):
            second = ids.new_ulid()
    assert second > first
    assert second.startswith(f"{_FUTURE_MS + 5_001:012x}")


def test_ids_keep_their_shape() -> None:
    made = ids.new_event_id()
    assert made.startswith("ev_") and len(made) == 3 + 26
    int(made[3:], 16)


def test_a_patterns_newest_events_come_back_in_arrival_order(client) -> None:  # type: ignore[no-untyped-def]
    """One batch shares a `received_at`: the newest-first samples must still be the arrival order, reversed."""
    batch = [
        {
            "service": "billing",
            "error_type": "TimeoutError",
            "severity": "high",
            "error_message": f"upstream call {i} timed out after 30s",
        }
        for i in range(40)
    ]
    r = client.post("/errors/batch", json={"errors": batch})
    assert r.status_code == 202, r.text
    sent = [item["event_id"] for item in r.json()["results"]]
    pattern_id = client.get(f"/events/{sent[0]}").json()["pattern_id"]
    samples = client.get(f"/patterns/{pattern_id}", params={"samples": 40}).json()["samples"]
    assert [s["id"] for s in samples] == list(reversed(sent))


def test_a_block_of_ids_for_one_commit_continues_the_order() -> None:
    before = ids.new_event_id()
    block = ids.new_event_ids(2_000)
    after = ids.new_event_id()
    assert [before, *block, after] == sorted([before, *block, after])
    assert len(set(block)) == len(block)
