"""A message's template: its first line with the variable parts masked (see `agent.ingest.masking`).

The template is a pure function of the message: no miner state, nothing that depends on what other
messages arrived before, so every replica computes the same template (and pattern) for an event.
Generalising across templates (`connection to <*> refused`) is the merge pass's job (`agent.ingest.merge`).
"""

from __future__ import annotations

import re

from agent.ingest.masking import mask

__all__ = ["first_line", "mask", "shape"]

_MAX_MESSAGE = 1000
_WS = re.compile(r"\s+")


def first_line(message: str) -> str:
    """The part of a message that is grouped: its first non-empty line, whitespace folded, bounded."""
    for line in message.splitlines():
        if line.strip():
            return _WS.sub(" ", line.strip())[:_MAX_MESSAGE]
    return ""


def shape(message: str) -> str:
    """The masked first line: what template grouping keys on."""
    return _WS.sub(" ", mask(first_line(message))).strip()
