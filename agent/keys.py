"""API keys: configured ones, or generated into the data dir on first start (never run open)."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

KEYS_FILE = "keys.json"


class Role(StrEnum):
    ingest = "ingest"
    admin = "admin"


@dataclass(frozen=True)
class KeyRing:
    ingest: tuple[str, ...]
    admin: str | None

    def role_of(self, presented: str) -> Role | None:
        """The role a presented key grants (constant-time comparisons), or None."""
        if self.admin is not None and hmac.compare_digest(presented.encode(), self.admin.encode()):
            return Role.admin
        match = False
        for key in self.ingest:
            match |= hmac.compare_digest(presented.encode(), key.encode())
        return Role.ingest if match else None

    @property
    def empty(self) -> bool:
        return not self.ingest and self.admin is None


def generate_key(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def load_or_create(data_dir: Path, configured: KeyRing) -> tuple[KeyRing, Path | None]:
    """Return the key ring to use. When none is configured, read or create `<data_dir>/keys.json` (mode 0600).

    Returns the ring and the path of the generated file when one was used.
    """
    if not configured.empty:
        return configured, None
    path = data_dir / KEYS_FILE
    if path.exists():
        data = json.loads(path.read_text())
        return KeyRing(tuple(data["api_keys"]), data["admin_key"]), path
    data_dir.mkdir(parents=True, exist_ok=True)
    ring = KeyRing((generate_key("el_ingest"),), generate_key("el_admin"))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"api_keys": list(ring.ingest), "admin_key": ring.admin}, fh, indent=2)
    return ring, path
