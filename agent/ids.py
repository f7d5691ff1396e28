"""Identifiers: time-ordered random ids for events, content-derived ids for patterns."""

from __future__ import annotations

import hashlib
import random
import time

_rng = random.SystemRandom().getrandbits(64)
_random = random.Random(_rng)  # seeded once from the OS; ids need uniqueness, not secrecy


def new_ulid() -> str:
    """48-bit millisecond time + 56 random bits as 26 hex digits: unique and sortable by time.

    (ULID-like; hex because formatting an int is ~100x cheaper than pure-Python base32, and 56 random
    bits per millisecond keep collisions out of reach: ~1e-9 for a million ids in one millisecond.)
    """
    return f"{time.time_ns() // 1_000_000:012x}{_random.getrandbits(56):014x}"


def new_event_id() -> str:
    return "ev_" + new_ulid()


def new_event_ids(count: int) -> list[str]:
    """`count` event ids of this millisecond (one clock read; the random part keeps them unique)."""
    prefix = f"ev_{time.time_ns() // 1_000_000:012x}"
    bits = _random.getrandbits
    return [f"{prefix}{bits(56):014x}" for _ in range(count)]


def fingerprint_hash(material: str) -> str:
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def pattern_id_for(fingerprint: str) -> str:
    """Patterns are named by their fingerprint, so the same error gets the same id on any replica."""
    return "pat_" + fingerprint[:16]
