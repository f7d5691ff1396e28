"""Where `errlearn run` reports to when ERRLEARN_URL / ERRLEARN_KEY are not given.

Default: the local server (`http://127.0.0.1:<ERRLEARN_PORT>`, 8090 unless changed) when it answers `/health`,
with the ingest key that `errlearn serve` generated in the local data dir (`<ERRLEARN_DATA_DIR>/keys.json`)
when that file exists. Otherwise the caller gets a message that says what is missing and how to set it.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.keys import KEYS_FILE

HOW_TO_SET = (
    "set ERRLEARN_URL (e.g. export ERRLEARN_URL=http://127.0.0.1:8090) and ERRLEARN_KEY (an ingest key: one of "
    "the server's ERRLEARN_API_KEYS, or api_keys in its data dir's keys.json), or pass --url and --key"
)


@dataclass(frozen=True)
class Target:
    url: str | None
    key: str | None
    note: str | None = None
    """What was assumed, or what is missing and how to set it (printed on stderr)."""


def local_url(host: str, port: int) -> str:
    """The URL of a server started here with the same settings (a wildcard bind is reached on loopback)."""
    reach = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{reach}:{port}"


def answers(url: str, timeout: float = 0.5) -> bool:
    """True when an errlearn server answers `GET /health` at `url` within `timeout` seconds."""
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=timeout) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def local_ingest_key(data_dir: Path) -> tuple[str, Path] | None:
    """The first ingest key in `<data_dir>/keys.json` (written by `errlearn serve`), with the file's path."""
    path = data_dir / KEYS_FILE
    try:
        keys = json.loads(path.read_text())["api_keys"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (str(keys[0]), path) if isinstance(keys, list) and keys else None


def resolve(
    url: str | None, key: str | None, *, default_url: str, data_dir: Path, probe: Callable[[str], bool] = answers
) -> Target:
    """The server and key to report to; `note` explains a default that was taken or what is missing."""
    notes: list[str] = []
    if not url:
        if not probe(default_url):
            return Target(
                None,
                key,
                f"no errlearn URL configured (ERRLEARN_URL is not set) and none answers at {default_url}: "
                + HOW_TO_SET,
            )
        url = default_url
        notes.append(f"ERRLEARN_URL is not set: reporting to the local server at {default_url}")
    if not key:
        found = local_ingest_key(data_dir)
        if found is not None:
            key = found[0]
            notes.append(f"ERRLEARN_KEY is not set: using the ingest key in {found[1]}")
        else:
            notes.append(f"ERRLEARN_KEY is not set and {data_dir / KEYS_FILE} does not exist: {HOW_TO_SET}")
    return Target(url, key, "; ".join(notes) or None)
