"""Engine creation, SQLite pragmas and schema migrations (Alembic)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError

log = logging.getLogger(__name__)
MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached or opened; the message says which and why."""


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", pool_size: int = 8) -> Engine:
    """Create the engine; for SQLite enable WAL and the chosen durability level.

    WAL lets the API read while the writer commits. `synchronous=FULL` fsyncs the WAL on every
    commit, so an acknowledged event survives a power cut too; the writer's group commit makes
    that affordable (one fsync per batch of concurrent requests, not per event). WAL checkpoints: see
    `agent.store.checkpoint`.
    """
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, json_serializer=_json_dumps
        )

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={sqlite_synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        return engine
    return create_engine(
        url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, json_serializer=_json_dumps
    )


def lock_for_write(conn: Connection) -> None:
    """SQLite: take the write lock first (`BEGIN IMMEDIATE`), before the transaction reads anything.

    With several writer processes (`serve --workers N`), a deferred transaction that read and then
    tries to write after another process committed fails at once with SQLITE_BUSY, whatever the busy
    timeout; an immediate one waits its turn on the lock (the busy timeout) and then reads fresh data.
    pysqlite opens transactions lazily, so this statement must be the transaction's first.
    """
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value, default=str).decode("utf-8")


def alembic_config(engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["engine"] = engine
    return cfg


MIGRATION_LOCK_KEY = 0x6572726C_6D696772 & 0x7FFF_FFFF_FFFF_FFFF
"""PostgreSQL advisory lock id held while migrating ("errlmigr"); the same in every errlearn process."""


@contextlib.contextmanager
def _sqlite_migration_lock(engine: Engine) -> Iterator[None]:
    path = engine.url.database or ""
    if not path or path == ":memory:":
        yield
        return
    with FileLock(f"{path}.migrate.lock", timeout=300):
        yield


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision (idempotent).

    Runs under a lock, so N processes starting at once on an empty database all come up: PostgreSQL
    takes a transaction-scoped advisory lock (released at commit), SQLite a file lock beside the
    database. The second process then finds the schema at head and does nothing.
    """
    try:
        with _sqlite_migration_lock(engine) if engine.dialect.name == "sqlite" else contextlib.nullcontext():
            _migrate_locked(engine)
    except TimeoutError as exc:
        raise DatabaseUnavailable(
            f"cannot migrate database {engine.url!r}: migration lock not acquired: {exc}"
        ) from exc


def _migrate_locked(engine: Engine) -> None:
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            cfg = alembic_config(engine)
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "heads")
    except SQLAlchemyError as exc:
        raise DatabaseUnavailable(f"cannot migrate database {engine.url!r}: {exc}") from exc


def ping(engine: Engine) -> bool:
    """True when a trivial query succeeds."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except SQLAlchemyError:
        return False
