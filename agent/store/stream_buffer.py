"""The Redis Streams ingest buffer (issue 16): acknowledge into a stream, store from it at the database's pace.

Off by default (`ERRLEARN_INGEST_BUFFER_URL` unset): the API hands events to the writer and answers after
the commit. On, the API hands them here instead (`StreamBuffer.write`, the writer's own `write` signature):
the normalised, already scrubbed rows of one request become ONE stream entry, added by a script that
refuses (`StreamBusy`, a `WriterBusy`: the API answers 503 + Retry-After) when the stream holds
`max_entries` entries not yet stored. The request is acknowledged once Redis has the entry on disk
(`appendfsync always`, or `WAITAOF` on Redis >= 7.2 with `appendonly yes`; `durability="off"` trusts the
server's own config).

Consumers (one thread per process that opens the buffer with `consume=True`; any number of processes, one
consumer group) read entries with XREADGROUP, submit each entry's events to the local `EventWriter` (group
commit: many entries in one transaction), and XACK + XDEL the entries after the commit. So the stream holds
only entries not yet stored: its length is the lag. An entry pending for a consumer that died is claimed by
another after `claim_idle_ms` (XAUTOCLAIM). An entry stored before its consumer died is not stored twice: its
events carry the ids they were acknowledged with (the events table's primary key), so a claimed entry whose
events are all stored is only acknowledged, and a second write of one fails on those ids and is then found
stored. A client's `Idempotency-Key` travels with the entry to the writer, so a client's retry is not stored
twice either.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson
import redis
import redis.asyncio as aioredis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from agent.ids import new_event_ids, new_ulid
from agent.store.tables import EventRow, table_of
from agent.store.writer import EventWriter, Stored, WriterBusy, WriterStopped

log = logging.getLogger(__name__)

Durability = Literal["auto", "off"]

# One round trip, atomic: refuse past the bound instead of trimming (trimming would drop entries not yet stored).
_ADD = """
local n = redis.call('XLEN', KEYS[1])
if n >= tonumber(ARGV[1]) then return {0, n} end
redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 'e', ARGV[3])
return {1, n + 1}
"""
WAIT_AOF = ("WAITAOF", 1, 0, 5000)
"""Redis >= 7.2: wait until the local AOF has the writes of this connection on disk (5 s at most)."""
_TIMES = ("timestamp", "received_at")
EVENTS = table_of(EventRow)


class StreamBusy(WriterBusy):
    """The stream is at its bound, or Redis did not take the entry: nothing of the request was acknowledged."""


class BufferConfigError(RuntimeError):
    """The Redis server cannot give the durability asked for (said at start, not at the first request)."""


@dataclass(frozen=True)
class StreamConfig:
    url: str
    stream: str = "errlearn:ingest"
    group: str = "errlearn"
    max_entries: int = 50_000
    claim_idle_ms: int = 30_000
    durability: Durability = "auto"
    read_count: int = 200
    """Entries read per XREADGROUP (each holds one request's events; the writer commits up to its max batch)."""
    block_ms: int = 500
    consumer: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}-{new_ulid()[-6:]}")


def decode(payload: bytes) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = orjson.loads(payload)
    for row in rows:
        for name in _TIMES:
            row[name] = dt.datetime.fromisoformat(row[name])
    return rows


class StreamBuffer:
    """The producer side (`write`, on the event loop) and, with `consume`, one consumer thread."""

    def __init__(self, config: StreamConfig, writer: EventWriter, *, consume: bool) -> None:
        self.config = config
        self.writer = writer
        self.consume = consume
        self.last_length = 0
        """Entries not yet stored, as last seen (by an add or by the consumer): the early 503 reads it."""
        self.refused = 0
        self.stored_entries = 0
        self.claimed_entries = 0
        self.mode = "unchecked"
        self._sync = redis.Redis.from_url(config.url, socket_timeout=10, health_check_interval=30)
        self._async: tuple[asyncio.AbstractEventLoop, aioredis.Redis, Any] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._closing: asyncio.Task[None] | None = None
        self._claim_from: bytes | str = "0-0"

    # -- lifecycle -----------------------------------------------------------------------------------
    def open(self) -> StreamBuffer:
        """Check durability, create the group (from the stream's start: nothing already added is skipped)."""
        self.mode = self._check_durability()
        try:
            self._sync.xgroup_create(self.config.stream, self.config.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self.last_length = int(self._sync.xlen(self.config.stream))
        if self.consume:
            self._thread = threading.Thread(target=self._run, name="errlearn-stream-consumer", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 30.0) -> None:
        """Stop consuming after the batch in hand is stored and acknowledged (the writer is stopped after)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
            try:  # a consumer that holds nothing is forgotten; one that holds entries is left for a claim
                pending = self._sync.xpending_range(
                    self.config.stream, self.config.group, "-", "+", 1, consumername=self.config.consumer
                )
                if not pending:
                    self._sync.xgroup_delconsumer(self.config.stream, self.config.group, self.config.consumer)
            except redis.RedisError:
                log.warning("could not unregister stream consumer %s", self.config.consumer, exc_info=True)
        self._sync.close()
        if self._async is not None:  # closed on its own loop when that is the caller's (the app's lifespan)
            loop, client, _ = self._async
            self._async = None
            try:
                if asyncio.get_running_loop() is loop:
                    self._closing = loop.create_task(client.aclose())
            except RuntimeError:  # no loop running here: the connections go with the process or the loop
                pass

    def _check_durability(self) -> str:
        if self.config.durability == "off":
            return "off"
        try:
            conf = self._sync.config_get("append*")
            version = str(self._sync.info("server").get("redis_version", "0"))
        except redis.ResponseError as exc:  # managed Redis may rename CONFIG
            raise BufferConfigError(
                f"cannot read the Redis persistence config ({exc}); configure appendonly yes + appendfsync always "
                "and set ERRLEARN_INGEST_BUFFER_DURABILITY=off to trust it"
            ) from exc
        if conf.get("appendfsync") == "always" and conf.get("appendonly") == "yes":
            return "appendfsync-always"
        if conf.get("appendonly") == "yes" and tuple(int(p) for p in version.split(".")[:2]) >= (7, 2):
            return "waitaof"
        raise BufferConfigError(
            f"Redis {version} has appendonly={conf.get('appendonly')} appendfsync={conf.get('appendfsync')}: an "
            "acknowledged event could be lost with Redis. Run it with `appendonly yes` and `appendfsync always` "
            "(or `appendonly yes` on Redis >= 7.2, which lets errlearn wait with WAITAOF), or set "
            "ERRLEARN_INGEST_BUFFER_DURABILITY=off to accept that risk"
        )

    # -- producing -----------------------------------------------------------------------------------
    def _client(self) -> tuple[aioredis.Redis, Any]:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:  # a client belongs to one event loop
            client = aioredis.Redis.from_url(self.config.url, socket_timeout=10)
            self._async = (loop, client, client.register_script(_ADD))
        return self._async[1], self._async[2]

    @property
    def full(self) -> bool:
        return self.last_length >= self.config.max_entries

    async def write(
        self,
        events: list[dict[str, Any]],
        counters: dict[str, int] | None = None,
        *,
        idempotency_key: str | None = None,
        limit: int | None = None,
    ) -> list[Stored]:
        """Add one request's rows as one entry; return once Redis holds it durably.

        The events get their ids here (the writer keeps them). Their pattern is assigned when a consumer stores
        them, so `pattern_id` is empty and `new_pattern` false in what this returns. `counters` and `limit` are
        the writer's: counters go to the writer directly, the bound here is `max_entries`.
        """
        if counters:
            self.writer.count(counters)
        if not events:
            return []
        rows = [{**ev, "id": eid} for ev, eid in zip(events, new_event_ids(len(events)), strict=True)]
        key = idempotency_key or ""  # the client's key travels with the entry; without one, the event ids dedupe
        client, add = self._client()
        try:
            if self.mode == "waitaof":
                async with client.pipeline(transaction=False) as pipe:  # one connection: WAITAOF covers the add
                    await add(
                        keys=[self.config.stream], args=[self.config.max_entries, key, orjson.dumps(rows)], client=pipe
                    )
                    pipe.execute_command(*WAIT_AOF)
                    (added, length), (local, _) = await pipe.execute()
                if added and int(local) < 1:
                    raise StreamBusy("Redis did not confirm the entry on disk within 5 s")
            else:
                added, length = await add(
                    keys=[self.config.stream], args=[self.config.max_entries, key, orjson.dumps(rows)]
                )
        except redis.RedisError as exc:
            log.warning("ingest buffer: Redis refused or is unreachable: %s", exc)
            raise StreamBusy(f"the ingest buffer (Redis) is unavailable: {type(exc).__name__}") from exc
        self.last_length = int(length)
        if not added:
            self.refused += 1
            raise StreamBusy(
                f"the ingest buffer holds {length} entries not yet stored (limit {self.config.max_entries})"
            )
        return [Stored(r["id"], "", False) for r in rows]

    # -- consuming -----------------------------------------------------------------------------------
    def _run(self) -> None:
        """Read, hand to the writer, and acknowledge the batch before: one batch is read and decoded while
        the writer commits the one before it (on stop, the batch in hand is still settled and acknowledged)."""
        next_claim = 0.0
        failures = 0
        inflight: _Batch | None = None
        while not self._stop.is_set() or inflight is not None:
            try:
                entries: list[tuple[bytes, dict[bytes, bytes] | None]] = []
                claimed: list[tuple[bytes, dict[bytes, bytes] | None]] = []
                if not self._stop.is_set():
                    if time.monotonic() >= next_claim:
                        entries = claimed = self._claim()
                        more = self._claim_from not in ("0-0", b"0-0")  # the scan has not reached the end
                        next_claim = 0.0 if more else time.monotonic() + max(0.2, self.config.claim_idle_ms / 2000)
                    if not entries:  # wait for entries only when no batch is waiting for its acknowledgement
                        entries = self._read(block=inflight is None)
                batch = self._submit(entries, claimed=bool(claimed)) if entries else None
                if inflight is not None:
                    done, inflight = self._settle(inflight), None
                    self.ack(done)
                inflight = batch
                self.last_length = int(self._sync.xlen(self.config.stream))
                failures = 0
            except WriterStopped:
                return
            except Exception:  # Redis away, or anything else: what is not acknowledged stays pending, claimed later
                failures += 1
                log.warning("ingest buffer consumer: error (attempt %d)", failures, exc_info=True)
                self._stop.wait(min(5.0, 0.1 * 2**failures))

    def _read(self, *, block: bool = True) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        got: Any = self._sync.xreadgroup(
            self.config.group,
            self.config.consumer,
            {self.config.stream: ">"},
            count=self.config.read_count,
            block=self.config.block_ms if block else None,
        )
        return [e for _, part in got or [] for e in part]

    def _claim(self) -> list[tuple[bytes, dict[bytes, bytes] | None]]:
        """Entries pending longer than `claim_idle_ms` (their consumer died, or our write of them failed)."""
        reply: Any = self._sync.xautoclaim(
            self.config.stream,
            self.config.group,
            self.config.consumer,
            min_idle_time=self.config.claim_idle_ms,
            start_id=self._claim_from,
            count=self.config.read_count,
        )
        # Go on from the cursor next time: a backlog left by an outage is claimed batch after batch.
        self._claim_from = reply[0]
        claimed = [(eid, fields) for eid, fields in reply[1] if eid is not None]
        if claimed:
            log.info("ingest buffer: claimed %d entries pending for a silent consumer", len(claimed))
            self.claimed_entries += len(claimed)
        return claimed

    def store(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]], *, claimed: bool = False) -> list[bytes]:
        """Write the entries' events through the writer; return the ids stored (to acknowledge).

        All entries go to the writer at once (one group commit). When that transaction fails, each entry is
        tried on its own, so one bad entry does not hold back the others; what fails stays pending and is
        claimed again after `claim_idle_ms`, unless all its events are in the database already (another
        consumer stored it meanwhile). `claimed`: entries delivered before, those already stored are only
        acknowledged. An entry that cannot be decoded goes to `<stream>:dead`.
        """
        return self._settle(self._submit(entries, claimed=claimed))

    def _submit(self, entries: list[tuple[bytes, dict[bytes, bytes] | None]], *, claimed: bool) -> _Batch:
        """Decode and hand to the writer. Claimed entries were delivered before: those already stored (their
        consumer died between the commit and the XACK) are acknowledged without writing them again."""
        work: list[tuple[bytes, str, list[dict[str, Any]]]] = []
        done: list[bytes] = []
        for eid, fields in entries:
            try:
                if not fields:
                    raise ValueError("empty entry")
                work.append((eid, fields[b"k"].decode(), decode(fields[b"e"])))
            except (KeyError, ValueError, TypeError):
                log.exception("ingest buffer: entry %r is unreadable; moved to %s:dead", eid, self.config.stream)
                dead: Any = {b"id": eid, **(fields or {})}
                self._sync.xadd(self.config.stream + ":dead", dead)
                done.append(eid)
        if claimed:
            try:
                stored = self._stored_ids([r["id"] for _, _, rows in work for r in rows])
            except SQLAlchemyError:  # written again then; a duplicate fails on its event ids (see `_settle`)
                stored = set()
            done += [eid for eid, _, rows in work if all(r["id"] in stored for r in rows)]
            work = [w for w in work if w[0] not in done]
        futures = [(eid, key, rows, self.writer.submit(rows, idempotency_key=key or None)) for eid, key, rows in work]
        return _Batch(done, futures)

    def _settle(self, batch: _Batch) -> list[bytes]:
        done, futures = batch.done, batch.futures
        retry: list[tuple[bytes, str, list[dict[str, Any]]]] = []
        for eid, key, rows, fut in futures:
            if _settled(fut):
                done.append(eid)
            else:
                retry.append((eid, key, rows))
        for eid, key, rows in retry:
            if (len(futures) > 1 and _settled(self.writer.submit(rows, idempotency_key=key or None))) or self._present(
                rows
            ):
                done.append(eid)
        self.stored_entries += len(done)
        return done

    def _present(self, rows: list[dict[str, Any]]) -> bool:
        """Every event of a failed entry is in the database already (another consumer stored it meanwhile, or
        a client key expired): the entry is done. An entry is stored in one transaction, whole or not at all."""
        try:
            stored = self._stored_ids([r["id"] for r in rows])
        except SQLAlchemyError:
            return False
        return len(stored) == len(rows)

    def _stored_ids(self, ids: list[str]) -> set[str]:
        found: set[str] = set()
        with self.writer.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                found.update(conn.execute(select(EVENTS.c.id).where(EVENTS.c.id.in_(chunk))).scalars())
        return found

    def ack(self, ids: list[bytes]) -> None:
        """Acknowledge and delete stored entries in one transaction: the stream keeps only what is not stored."""
        if not ids:
            return
        with self._sync.pipeline(transaction=True) as pipe:
            pipe.xack(self.config.stream, self.config.group, *ids)
            pipe.xdel(self.config.stream, *ids)
            pipe.execute()

    # -- reading the state ---------------------------------------------------------------------------
    def lag(self) -> int | None:
        """Entries not yet stored (None when Redis does not answer)."""
        try:
            self.last_length = int(self._sync.xlen(self.config.stream))
        except redis.RedisError:
            return None
        return self.last_length

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "enabled": True,
            "stream": self.config.stream,
            "group": self.config.group,
            "durability": self.mode,
            "consuming": self.consume,
            "limit": self.config.max_entries,
            "refused_requests": self.refused,
            "stored_entries": self.stored_entries,
            "claimed_entries": self.claimed_entries,
        }
        try:
            pending: Any = self._sync.xpending(self.config.stream, self.config.group)
            out["length"] = int(self._sync.xlen(self.config.stream))
            out["pending"] = int(pending["pending"])
            first: Any = self._sync.xrange(self.config.stream, count=1)
            oldest_ms = int(first[0][0].split(b"-")[0]) if first else None
            out["oldest_age_s"] = round(time.time() - oldest_ms / 1000, 3) if oldest_ms else 0.0
            out["consumers"] = len(self._sync.xinfo_consumers(self.config.stream, self.config.group))
            out["ok"] = True
            self.last_length = out["length"]
        except redis.RedisError as exc:
            out.update(ok=False, error=type(exc).__name__)
        out["active"] = self.full
        return out


@dataclass
class _Batch:
    """Entries handed to the writer: those already settled (dead-lettered) and the writer's futures."""

    done: list[bytes]
    futures: list[tuple[bytes, str, list[dict[str, Any]], Future[list[Stored]]]]


def _settled(fut: Future[list[Stored]]) -> bool:
    try:
        fut.result(120.0)
    except Exception:
        log.warning("ingest buffer: storing an entry failed; it stays pending", exc_info=True)
        return False
    return True
