"""What one group commit writes: events grouped into patterns, pattern counters, stats counters, keys.

`EventWriter` (`agent.store.writer`) decides *when* to commit and acknowledges; `Committer` decides
*what* a commit contains, in ONE transaction: the new patterns (one INSERT … ON CONFLICT), the batch's
events, the pattern hooks (e.g. diagnosis jobs for new patterns), the Idempotency-Keys, and last the rows
every writer adds to, as appended tallies (what the recurring patterns and the stats counters gain:
`agent.store.tallies`, which `fold` adds into their rows about once a second).

Pattern assignment is content-addressed (`agent.ingest.grouping`) and honours the stored merge
decisions (`pattern_aliases`, cached by `agent.store.aliases.AliasMap`, checked once per commit):
replicas on one database agree.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, case, delete, func, insert, literal, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from agent.domain import Grouping
from agent.ids import new_event_ids, pattern_id_for
from agent.ingest.grouping import Grouper
from agent.store import tallies
from agent.store.aliases import AliasMap
from agent.store.batch_sql import SEVERITY_RANK, BatchSQL
from agent.store.db import lock_for_write
from agent.store.tables import IdempotencyKeyRow, PatternRow, table_of

PATTERNS = table_of(PatternRow)
IDEMPOTENCY = table_of(IdempotencyKeyRow)

PatternHook = Callable[[Connection, list[str], list[str]], None]
"""Called inside the writer's transaction with the ids of new patterns and of changed ones."""


@dataclass(frozen=True)
class Stored:
    event_id: str
    pattern_id: str
    new_pattern: bool


@dataclass
class Work:
    """One submission: its events, the future its caller waits on, counters, its Idempotency-Key."""

    events: list[dict[str, Any]]
    future: Any  # an `agent.store.writer.Ack` (a concurrent Future, or an event loop's ack) or None
    counters: dict[str, int] = field(default_factory=dict)
    idempotency_key: str | None = None


Results = tuple[list[list[Stored]], list[dict[str, Any]]]
"""The stored results per submission, and the event rows written."""


class Committer:
    """Builds and runs one group commit. Holds the caches (known patterns, groupings, merge targets) of
    one writer thread; not thread-safe. `reset()` after a failed transaction."""

    def __init__(self, engine: Engine, *, pattern_hooks: Sequence[PatternHook] = ()) -> None:
        self.engine = engine
        self.pattern_hooks = pattern_hooks
        self.sql = BatchSQL(engine.dialect.name)
        self._grouper = Grouper()
        self._aliases = AliasMap()
        self._known: dict[str, int] = {}
        """Pattern id -> the highest severity rank this writer knows it has (the row exists)."""
        self.commits = 0
        self.unfolded = 0
        """Tally rows this committer appended since its last `fold`."""
        self._insert_patterns = _pattern_upsert(engine.dialect.name)
        self._conn: Connection | None = None

    def reset(self) -> None:
        """Forget what a failed transaction may have left wrong: known patterns and merge targets reload, and
        the next transaction runs on a new connection."""
        self._known.clear()
        self._aliases.invalidate()
        if self._conn is not None:
            with contextlib.suppress(Exception):  # a dead connection may fail even to close
                self._conn.close()
            self._conn = None

    def close(self) -> None:
        self.reset()

    def _connection(self) -> Connection:
        """The writer's own connection, kept across commits: checking one out of the pool per commit cost a
        pre-ping round trip each time on PostgreSQL (~12 % of the writer). A broken one is replaced after
        the failed transaction (`reset`), and `EventWriter` retries a transaction whose connection died."""
        conn = self._conn
        if conn is None or conn.closed or conn.invalidated:
            conn = self._conn = self.engine.connect()
        return conn

    def fold(self) -> int:
        """Fold every visible tally (this writer's and any other's) in a transaction of its own."""
        conn = self._connection()
        with conn.begin():
            lock_for_write(conn)
            folded = tallies.fold(conn, self.sql)
        self.unfolded = 0
        return folded

    def commit(self, batch: list[Work]) -> Results:
        self.commits += 1
        self.sql.begin_commit()
        group = self._grouper.group
        replays = self._replays(batch)
        rows: list[dict[str, Any]] = []
        groupings: list[Grouping] = []
        per_work: list[list[dict[str, Any]]] = []
        ids = iter(new_event_ids(sum(len(w.events) for i, w in enumerate(batch) if i not in replays)))
        for i, work in enumerate(batch):
            items = []
            for ev in [] if i in replays else work.events:
                groupings.append(
                    group(
                        service=ev["service"],
                        error_type=ev["error_type"],
                        message=ev["error_message"],
                        stack_trace=ev["stack_trace"],
                    )
                )
                row = dict(ev)
                row["id"] = ev.get("id") or next(ids)  # the ingest buffer names its events when it takes them
                rows.append(row)
                items.append(row)
            per_work.append(items)

        conn = self._connection()
        with conn.begin():
            lock_for_write(conn)
            targets = self._aliases.targets(conn)
            for row, grouping in zip(rows, groupings, strict=True):
                fp = grouping.fingerprint
                row["pattern_id"] = targets.get(fp) or pattern_id_for(fp)
            new_ids, recurring = self._insert_new_patterns(conn, rows, groupings)
            self.sql.insert_event_rows(conn, rows)
            counters: dict[str, int] = {}
            for work in batch:
                for k, v in work.counters.items():
                    counters[k] = counters.get(k, 0) + v
            if rows:
                counters["received"] = counters.get("received", 0) + len(rows)
            for row in rows:
                for key in (f"service:{row['service']}", f"severity:{row['severity']}"):
                    counters[key] = counters.get(key, 0) + 1
            if new_ids:
                for hook in self.pattern_hooks:
                    hook(conn, sorted(new_ids), [])
            fresh = [
                [Stored(r["id"], r["pattern_id"], r["pattern_id"] in new_ids) for r in items] for items in per_work
            ]
            now = dt.datetime.now(dt.UTC)
            keyed = [
                {"key": w.idempotency_key, "results": [list(s.__dict__.values()) for s in fresh[i]], "created_at": now}
                for i, w in enumerate(batch)
                if w.idempotency_key and i not in replays
            ]
            if keyed:
                conn.execute(insert(IDEMPOTENCY), keyed)
            if self.commits % 1000 == 1:  # keys are kept a day
                conn.execute(delete(IDEMPOTENCY).where(IDEMPOTENCY.c.created_at < now - dt.timedelta(days=1)))
            # What the recurring patterns and the counters gain is appended, not updated in place: a page or
            # two whatever the number of patterns, and no row lock another replica waits on.
            # SQLite counts its events into their patterns at the fold (`tallies.count_tail`): no row per pattern.
            if not self.sql.sqlite:
                self.sql.tally_patterns(conn, recurring)
            self.sql.tally_counters(conn, counters)
            self.unfolded += (len(rows) if self.sql.sqlite else len(recurring)) + len(counters)
        results: list[list[Stored]] = []
        for i, own in enumerate(fresh):
            replay = replays.get(i)
            results.append(fresh[replay] if isinstance(replay, int) else replay if replay is not None else own)
        return results, rows

    def _replays(self, batch: list[Work]) -> dict[int, list[Stored] | int]:
        """Works whose Idempotency-Key was already committed (stored results), or repeats an earlier work
        of this batch (its index)."""
        keys = [w.idempotency_key for w in batch if w.idempotency_key]
        if not keys:
            return {}
        with self.engine.connect() as conn:
            stored = {
                k: [Stored(*r) for r in res]
                for k, res in conn.execute(
                    select(IDEMPOTENCY.c.key, IDEMPOTENCY.c.results).where(IDEMPOTENCY.c.key.in_(keys))
                )
            }
        out: dict[int, list[Stored] | int] = {}
        first: dict[str, int] = {}
        for i, w in enumerate(batch):
            k = w.idempotency_key
            if not k:
                continue
            if k in stored:
                out[i] = stored[k]
            elif k in first:
                out[i] = first[k]
            else:
                first[k] = i
        return out

    def _insert_new_patterns(
        self, conn: Connection, rows: list[dict[str, Any]], groupings: list[Grouping]
    ) -> tuple[set[str], list[tuple[str, int, dt.datetime, str]]]:
        """Count the batch's events into their patterns and create the new ones; return the new ids and,
        for the caller to apply at the end of the transaction, the recurring patterns' additions.

        Keyed by pattern id (the fingerprint's, or a merge target's). A new pattern is inserted with
        ON CONFLICT DO UPDATE, so two replicas creating the same pattern at once both succeed and add up.
        """
        known = self._known
        if self.sql.sqlite and all(row["pattern_id"] in known for row in rows):
            return set(), []  # nothing new, and SQLite counts recurring patterns at the fold (`tallies.count_tail`)
        # pid -> [events, first index, min timestamp, max timestamp, highest rank]
        acc: dict[str, list[Any]] = {}
        rank = SEVERITY_RANK
        for i, row in enumerate(rows):
            pid, ts, r = row["pattern_id"], row["timestamp"], rank[row["severity"]]
            a = acc.get(pid)
            if a is None:
                acc[pid] = [1, i, ts, ts, r]
                continue
            a[0] += 1
            if ts < a[2]:
                a[2] = ts
            if ts > a[3]:
                a[3] = ts
            if r > a[4]:
                a[4] = r
        missing = [pid for pid in acc if pid not in known]
        for start in range(0, len(missing), 500):
            chunk = missing[start : start + 500]
            for pid, sev in conn.execute(
                select(PATTERNS.c.id, PATTERNS.c.max_severity).where(PATTERNS.c.id.in_(chunk))
            ):
                known[pid] = rank.get(sev, -1)
        names = {r: name for name, r in rank.items()}
        new_ids: set[str] = set()
        new_rows: list[dict[str, Any]] = []
        updates: list[tuple[str, int, dt.datetime, str]] = []
        for pid in sorted(acc):  # one lock order for every writer: no deadlock between them
            n, first_i, first_ts, last_ts, top = acc[pid]
            if pid in known:
                known[pid] = max(known[pid], top)
                updates.append((pid, n, last_ts, names[top]))
                continue
            first_row, grouping = rows[first_i], groupings[first_i]
            new_rows.append(
                {
                    "id": pid,
                    "fingerprint": grouping.fingerprint,
                    "service": first_row["service"],
                    "error_type": first_row["error_type"],
                    "template": grouping.template,
                    "method": grouping.method.value,
                    "reason": grouping.reason,
                    "first_seen": first_ts,
                    "last_seen": last_ts,
                    "count": 0 if self.sql.sqlite else n,  # SQLite: the fold counts the tail's events
                    "max_severity": names[top],
                    "sample_event_id": first_row["id"],
                    "resolved": False,
                    "content_version": 1,
                    "indexed_version": 0,
                }
            )
            known[pid] = top
            new_ids.add(pid)
        if new_rows:
            conn.execute(self._insert_patterns, new_rows)
        return new_ids, updates


def _pattern_upsert(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO UPDATE for new patterns (built once: building it cost ~5 % of a commit)."""
    ins = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(PATTERNS)
    return ins.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "count": PATTERNS.c.count + ins.excluded.count,
            "last_seen": _greatest(dialect, PATTERNS.c.last_seen, ins.excluded.last_seen),
            "first_seen": _least(dialect, PATTERNS.c.first_seen, ins.excluded.first_seen),
            "max_severity": _higher_severity(PATTERNS.c.max_severity, ins.excluded.max_severity),
            "resolved": False,
        },
    )


def _greatest(dialect: str, column: Any, value: Any) -> Any:
    # SQLite's two-argument max() is its GREATEST; bind with the column's type so SQLite compares like with like.
    fn = func.greatest if dialect == "postgresql" else func.max
    return fn(column, value if isinstance(value, ColumnElement) else literal(value, type_=column.type))


def _least(dialect: str, column: Any, value: Any) -> Any:
    fn = func.least if dialect == "postgresql" else func.min
    return fn(column, value)


def _severity_rank(expr: Any) -> Any:
    return case(SEVERITY_RANK, value=expr, else_=-1)


def _higher_severity(column: Any, value: Any) -> Any:
    """The higher of the stored severity and `value` (in SQL: another replica may have raised it meanwhile)."""
    other = value if isinstance(value, ColumnElement) else literal(value, type_=column.type)
    return case((_severity_rank(other) > _severity_rank(column), other), else_=column)
