"""Identifiers: time-ordered random ids for events, content-derived ids for patterns."""

from __future__ import annotations

import hashlib
import random
import threading
import time

_rng = random.SystemRandom().getrandbits(64)
_random = random.Random(_rng)  # seeded once from the OS; ids need uniqueness, not secrecy


_RANDOM_BITS = 56
_clock_ns = time.time_ns
_lock = threading.Lock()
_last_ms = 0
_last_rand = 0


def _next_block(count: int) -> list[tuple[int, int]]:
    """`count` (millisecond, random part) pairs, each above the one before (one clock read, one lock)."""
    global _last_ms, _last_rand
    now = _clock_ns() // 1_000_000
    bits = _random.getrandbits
    out: list[tuple[int, int]] = []
    with _lock:
        ms, rand = _last_ms, _last_rand
        for _ in range(count):
            if now > ms:
                ms, rand = now, bits(_RANDOM_BITS - 1)
            else:
                rand += 1 + bits(16)
                if rand >> _RANDOM_BITS:  # the millisecond's random space is used up: borrow the next one
                    ms, rand = ms + 1, bits(_RANDOM_BITS - 1)
            out.append((ms, rand))
        _last_ms, _last_rand = ms, rand
    return out


def new_ulid() -> str:
    """48-bit millisecond time + 56 random bits as 26 hex digits: unique and sortable by time.

    (ULID-like; hex because formatting an int is ~100x cheaper than pure-Python base32, and 56 random
    bits per millisecond keep collisions out of reach: ~1e-9 for a million ids in one millisecond.)

    Monotonic within a process, as the ULID spec's monotonic mode: an id made in the same millisecond
    as the previous one (or after the clock stepped back) is the previous one plus a small random step,
    so ids sort in the order they were made. Events ordered by (received_at, id) then come out in
    arrival order, and "the most recent events" of a pattern are the same set on every run.
    """
    ((ms, rand),) = _next_block(1)
    return f"{ms:012x}{rand:014x}"


def new_event_id() -> str:
    return "ev_" + new_ulid()


def new_event_ids(count: int) -> list[str]:
    """`count` event ids in increasing order, as `new_event_id` makes them, for one clock read and one lock."""
    return [f"ev_{ms:012x}{rand:014x}" for ms, rand in _next_block(count)]


def fingerprint_hash(material: str) -> str:
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def pattern_id_for(fingerprint: str) -> str:
    """Patterns are named by their fingerprint, so the same error gets the same id on any replica."""
    return "pat_" + fingerprint[:16]
