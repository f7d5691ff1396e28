"""Identifiers: time-ordered random ids for events, content-derived ids for patterns."""

from __future__ import annotations

import hashlib
import os
import time

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid() -> str:
    """A ULID: 48-bit millisecond time + 80 random bits, 26 Crockford base32 characters, sortable by time."""
    value = (time.time_ns() // 1_000_000) << 80 | int.from_bytes(os.urandom(10), "big")
    out = []
    for _ in range(26):
        out.append(_CROCKFORD[value & 31])
        value >>= 5
    return "".join(reversed(out))


def new_event_id() -> str:
    return "ev_" + new_ulid()


def fingerprint_hash(material: str) -> str:
    return hashlib.sha256(material.encode("utf-8", "surrogatepass")).hexdigest()


def pattern_id_for(fingerprint: str) -> str:
    """Patterns are named by their fingerprint, so the same error gets the same id on any replica."""
    return "pat_" + fingerprint[:16]
