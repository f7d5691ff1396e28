"""Tables of the recovery layer (on the shared metadata)."""

from __future__ import annotations
