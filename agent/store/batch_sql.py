"""The hot statements of a group commit, as driver SQL with parameters converted once per commit.

Going through SQLAlchemy Core, an executemany pays per row for parameter construction and one
type processor per bound value (two datetimes, a JSON and a boolean per event): most of the
writer's time, and, per distinct pattern in a commit, what made a batch of many patterns cost three
times a batch of one. These statements are written per dialect and fed tuples that already hold
what the driver needs; the values stored are the same as SQLAlchemy's (`tests/test_batch_sql.py`
compares them).

On SQLite each runs as multi-row `INSERT … VALUES (…), (…)` statements, not an executemany: pysqlite
steps an executemany once per row, and every step drops and retakes the GIL. While another thread holds
the GIL (the event loop), each retake waits for a thread switch: stand-alone with one busy Python thread
beside it, an 800-event commit spent 16-21 ms in its executemany against 4.5-4.9 ms idle, and ~4.5 ms
either way as multi-row statements. Rows go in chunks of power-of-two sizes (17 rows: 16 + 1), so a
handful of statement texts serve every batch size and stay in the driver's statement cache. PostgreSQL
copies the events in instead (`COPY events FROM STDIN`, each row written by psycopg's C code): an
executemany runs the INSERT once per row in the server, and a multi-row statement longer than psycopg's 4 KB
query cache is parsed again on the client every time. Stand-alone, 800-event commits, CPU per event (three
runs each): PostgreSQL 17-28 us with the executemany, 16-19 us with COPY; the client 30-39 against 24-35 us.
(Multi-row statements: PostgreSQL 14-15, the client 60-63.)
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any

import orjson
import psycopg
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from agent.domain import Severity

EVENT_COLUMNS = (
    "id",
    "pattern_id",
    "service",
    "context",
    "error_type",
    "error_message",
    "severity",
    "kind",
    "stack_trace",
    "stack_truncated",
    "additional_data",
    "timestamp",
    "received_at",
)
SEVERITY_RANK = {s.value: s.rank for s in Severity}
MAX_CHUNK_ROWS = 256
"""The largest multi-row statement (SQLite), in rows: 256 x 13 event columns = 3,328 parameters, inside
SQLite's default limit since 3.32 (32,766). An SQLite built with a smaller limit gets smaller chunks
(`BatchSQL._check_limit`)."""


def chunk_sizes(n: int, largest: int = MAX_CHUNK_ROWS) -> list[int]:
    """`n` rows as chunks of power-of-two sizes, largest first (800 with 256: 256, 256, 256, 32)."""
    sizes = [largest] * (n // largest)
    rest = n % largest
    bit = largest >> 1
    while rest:
        if rest & bit:
            sizes.append(bit)
            rest -= bit
        bit >>= 1
    return sizes


class MultiInsert:
    """`INSERT INTO table (columns) VALUES row, row, …` for any number of rows: on SQLite as power-of-two
    chunks of rows per statement, elsewhere one row per statement in an executemany."""

    def __init__(self, head: str, row: str, width: int, *, multi_row: bool) -> None:
        self.head = head
        """`INSERT INTO t (a, b) VALUES`"""
        self.row = row
        """One row's placeholders, e.g. `(?, ?)`."""
        self.width = width
        """Parameters per row."""
        self.multi_row = multi_row
        self.largest = MAX_CHUNK_ROWS
        self._statements: dict[int, str] = {}

    def statement(self, rows: int) -> str:
        sql = self._statements.get(rows)
        if sql is None:
            sql = self._statements[rows] = f"{self.head} {', '.join([self.row] * rows)}"
        return sql

    def run(self, conn: Connection, params: Sequence[tuple[Any, ...]]) -> None:
        if not self.multi_row:
            conn.exec_driver_sql(self.statement(1), list(params))
            return
        at = 0
        for size in chunk_sizes(len(params), self.largest):
            flat = tuple(v for row in params[at : at + size] for v in row)
            conn.exec_driver_sql(self.statement(size), flat)
            at += size


def rank_sql(expr: str) -> str:
    """SQL for the rank of a severity name (-1 for anything else)."""
    whens = " ".join(f"WHEN '{name}' THEN {rank}" for name, rank in SEVERITY_RANK.items())
    return f"(CASE {expr} {whens} ELSE -1 END)"


def severity_name_sql(expr: str) -> str:
    """SQL for the severity name of a rank: `rank_sql`'s inverse."""
    whens = " ".join(f"WHEN {rank} THEN '{name}'" for name, rank in SEVERITY_RANK.items())
    return f"(CASE {expr} {whens} END)"


class BatchSQL:
    """Driver-level statements for one dialect ("sqlite" or "postgresql")."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"
        mark = "?" if self.sqlite else "%s"
        # SQLite's events insert; PostgreSQL copies its events in (`copy_events`).
        self.insert_events = MultiInsert(
            f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES",
            f"({', '.join('?' for _ in EVENT_COLUMNS)})",
            len(EVENT_COLUMNS),
            multi_row=True,
        )
        greatest = "max" if self.sqlite else "greatest"
        # The higher severity and the later last_seen are decided in SQL: another replica may have moved them.
        self.update_patterns = (
            f"UPDATE patterns SET count = count + {mark}, last_seen = {greatest}(last_seen, {mark}), "
            f"max_severity = CASE WHEN {rank_sql(mark)} > {rank_sql('max_severity')} THEN {mark} "
            f"ELSE max_severity END, resolved = {'0' if self.sqlite else 'false'} WHERE id = {mark}"
        )
        self.insert_pattern_tallies = MultiInsert(
            "INSERT INTO pattern_tallies (pattern_id, n, last_seen, max_severity) VALUES",
            f"({mark}, {mark}, {mark}, {mark})",
            4,
            multi_row=self.sqlite,
        )
        self.insert_counter_tallies = MultiInsert(
            "INSERT INTO counter_tallies (name, value) VALUES", f"({mark}, {mark})", 2, multi_row=self.sqlite
        )
        self.copy_events = f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN"
        self._limit_checked = not self.sqlite
        self._datetimes: dict[dt.datetime, Any] = {}

    def when(self, value: dt.datetime) -> Any:
        """A datetime as the column stores it: SQLite keeps naive UTC text with microseconds, as SQLAlchemy's
        DATETIME writes it; PostgreSQL takes the aware value. Memoised per commit (a request shares one
        `received_at`, and floods repeat timestamps)."""
        hit = self._datetimes.get(value)
        if hit is None:
            if self.sqlite:
                naive = value.astimezone(dt.UTC).replace(tzinfo=None) if value.tzinfo is not None else value
                hit = naive.isoformat(" ", "microseconds")
            else:
                hit = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
            self._datetimes[value] = hit
        return hit

    def begin_commit(self) -> None:
        if len(self._datetimes) > 4096:
            self._datetimes.clear()

    def event_params(self, row: dict[str, Any]) -> tuple[Any, ...]:
        when = self.when
        return (
            row["id"],
            row["pattern_id"],
            row["service"],
            row["context"],
            row["error_type"],
            row["error_message"],
            row["severity"],
            row["kind"],
            row["stack_trace"],
            (1 if row["stack_truncated"] else 0) if self.sqlite else bool(row["stack_truncated"]),
            orjson.dumps(row["additional_data"], default=str).decode("utf-8"),  # as `db._json_dumps`
            when(row["timestamp"]),
            when(row["received_at"]),
        )

    def _run(self, insert: MultiInsert, conn: Connection, params: Sequence[tuple[Any, ...]]) -> None:
        if not self._limit_checked:
            self._check_limit(conn)
        insert.run(conn, params)

    def _check_limit(self, conn: Connection) -> None:
        """SQLite: fit the chunks to this library's limit on a statement's parameters (once)."""
        self._limit_checked = True
        raw: Any = conn.connection.driver_connection
        limit = int(raw.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER))
        for insert in (self.insert_events, self.insert_pattern_tallies, self.insert_counter_tallies):
            while insert.largest > 1 and insert.largest * insert.width > limit:
                insert.largest >>= 1

    def insert_event_rows(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            if not self.sqlite:
                self._copy_event_rows(conn, rows)
                return
            self._run(self.insert_events, conn, [self.event_params(r) for r in rows])

    def _copy_event_rows(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """PostgreSQL: the rows through `COPY … FROM STDIN` on the transaction's own connection. A driver error
        is raised as SQLAlchemy raises it (`DBAPIError` with the driver's error as `orig`, the connection
        invalidated when it broke), so the writer retries a deadlock or a dead connection as before."""
        raw: Any = conn.connection.driver_connection
        try:
            with raw.cursor() as cur, cur.copy(self.copy_events) as copy:
                for row in rows:
                    copy.write_row(self.event_params(row))
        except psycopg.Error as exc:
            broken = bool(raw.broken or raw.closed)
            if broken:
                conn.invalidate()
            raise DBAPIError.instance(
                self.copy_events, None, exc, psycopg.Error, connection_invalidated=broken
            ) from exc

    def tally_patterns(self, conn: Connection, updates: Sequence[tuple[str, int, dt.datetime, str]]) -> None:
        """Append (pattern id, events, latest timestamp, highest severity) per recurring pattern to
        `pattern_tallies` (`agent.store.tallies` folds them into `patterns`)."""
        if updates:
            self._run(
                self.insert_pattern_tallies, conn, [(pid, n, self.when(seen), sev) for pid, n, seen, sev in updates]
            )

    def tally_counters(self, conn: Connection, counters: dict[str, int]) -> None:
        """Append what this commit adds to each stats counter to `counter_tallies`."""
        if counters:
            self._run(self.insert_counter_tallies, conn, sorted(counters.items()))

    def add_to_patterns(
        self, conn: Connection, updates: Sequence[tuple[str, int, Any, str]], *, stored: bool = False
    ) -> None:
        """(pattern id, events, latest timestamp, highest severity) per pattern, in id order (one lock order for
        every writer: no deadlock between replicas). With `stored`, the timestamps are already as the column
        stores them (read back by driver SQL)."""
        if updates:
            when = (lambda v: v) if stored else self.when
            conn.exec_driver_sql(
                self.update_patterns, [(n, when(seen), sev, sev, pid) for pid, n, seen, sev in updates]
            )
