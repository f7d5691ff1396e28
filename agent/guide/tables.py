"""Tables of the guide layer (on the shared metadata)."""

from __future__ import annotations
