"""Message templates mined with Drain3, with its state saved and restored as bytes.

The caller persists `snapshot()` in the same transaction as the events it grouped, so a restart
resumes with exactly the clusters those events were assigned to (grouping is deterministic).
"""

from __future__ import annotations

import base64
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import jsonpickle  # type: ignore[import-untyped]
from drain3 import TemplateMiner  # type: ignore[import-untyped]
from drain3.template_miner_config import TemplateMinerConfig  # type: ignore[import-untyped]

# Variable parts are masked token by token: a token is a run without spaces or brackets. Only tokens
# with a digit or an "@" can be variable, so most words cost one cheap check. Order matters.
_FULL_MASKS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), name)
    for p, name in (
        (r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", "UUID"),
        (r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?)?", "TS"),
        (r"\d{2}:\d{2}:\d{2}(?:[.,]\d+)?", "TS"),
        (r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", "EMAIL"),
        # An endpoint (address with a port) is one variable, whichever form the address takes.
        (r"(?:\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+):\d{1,5}", "ADDR"),
        (r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}", "IP"),
        (r"(?:[0-9a-fA-F]{2,}:){3,}[0-9a-fA-F]{2,}", "ID"),
        (r"0x[0-9a-fA-F]+", "HEX"),
        (r"(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{12,}", "HEX"),
        (r"[-+]?\d+(?:\.\d+)?(?:[a-zA-Z%]{1,3})?", "NUM"),
        (r"(?=[A-Za-z_-]*\d)[0-9A-Za-z_-]{16,}", "ID"),
        (r"(?:[\w.-]*/)+[\w.-]+", "PATH"),
    )
)
_TOKEN = re.compile(r"[^\s,;()\[\]{}<>\"'=]+")
_DIGITS = re.compile(r"\d+")
_VARIABLE = re.compile(r"[\d@]")
_MAX_MESSAGE = 1000
_WS = re.compile(r"\s+")


def _mask_token(match: re.Match[str]) -> str:
    tok = match.group()
    if tok.isdigit():
        return "<NUM>"
    if _VARIABLE.search(tok) is None or tok.startswith("REDACTED:"):
        return tok
    has_digit = _DIGITS.search(tok) is not None
    core = tok.rstrip(".:")
    tail = tok[len(core) :]
    for rx, name in _FULL_MASKS:
        if rx.fullmatch(core):
            return f"<{name}>{tail}"
    return _DIGITS.sub("<NUM>", tok) if has_digit else tok


def mask(line: str) -> str:
    """Replace variable parts (ids, numbers, addresses, times, paths with digits) with `<KIND>`."""
    return _TOKEN.sub(_mask_token, line)


@dataclass(frozen=True)
class Mined:
    cluster_id: int
    template: str
    changed: bool
    """True when the miner's state changed (new cluster or generalised template): snapshot it."""


def _config(sim_th: float, depth: int) -> TemplateMinerConfig:
    cfg = TemplateMinerConfig()
    cfg.masking_instructions = []  # we mask ourselves, once, before the cache (see `mask`)
    cfg.drain_sim_th = sim_th
    cfg.drain_depth = depth
    cfg.drain_max_children = 100
    cfg.parametrize_numeric_tokens = True
    cfg.snapshot_compress_state = True
    return cfg


def first_line(message: str) -> str:
    """The part of a message that is mined: its first non-empty line, whitespace folded, bounded."""
    for line in message.splitlines():
        if line.strip():
            return _WS.sub(" ", line.strip())[:_MAX_MESSAGE]
    return ""


class TemplateMinerStore:
    """A Drain3 miner plus a cache of already-seen masked messages (the hot path skips Drain)."""

    # sim_th 0.7 / depth 5: the best single setting on the seven Loghub-2.0 2k systems (mean GA 0.794;
    # Drain's defaults 0.4 / 4 gave 0.748). Production has no per-dataset tuning, so one global value.
    def __init__(self, state: bytes | None = None, *, sim_th: float = 0.7, depth: int = 5, cache_size: int = 50_000):
        self._miner = TemplateMiner(config=_config(sim_th, depth))
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        if state:
            loaded = jsonpickle.loads(zlib.decompress(base64.b64decode(state)), keys=True)
            self._miner.drain.id_to_cluster = loaded.id_to_cluster
            self._miner.drain.clusters_counter = loaded.clusters_counter
            self._miner.drain.root_node = loaded.root_node

    def mine(self, message: str) -> Mined:
        masked = mask(first_line(message))
        cid = self._cache.get(masked)
        if cid is not None:
            self._cache.move_to_end(masked)
            return Mined(cid, self.template_of(cid), False)
        cluster, change_type = self._miner.drain.add_log_message(masked)
        cid = int(cluster.cluster_id)
        self._cache[masked] = cid
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return Mined(cid, str(cluster.get_template()), change_type != "none")

    def template_of(self, cluster_id: int) -> str:
        cluster = self._miner.drain.id_to_cluster.get(cluster_id)
        return str(cluster.get_template()) if cluster is not None else ""

    def snapshot(self) -> bytes:
        raw = jsonpickle.dumps(self._miner.drain, keys=True).encode("utf-8")
        return base64.b64encode(zlib.compress(raw))

    @property
    def cluster_count(self) -> int:
        return len(self._miner.drain.clusters)
