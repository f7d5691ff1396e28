"""The lexical index's home: the `lexical_docs` table, and the in-memory index each process keeps in step with it.

Written by the indexer in the same place and at the same time as the vectors (`Retrieval.index_pending`),
read by every process that searches. Every process builds its `LexicalIndex` from the same rows, so
two replicas on one PostgreSQL database rank alike; a process that did not write itself catches up
at most `REFRESH_S` after another one wrote.

Catching up reads the rows whose `seq` is above the last one seen, less a window of `OVERLAP` rows
(a row whose `seq` was drawn before a neighbour's but committed after it is still read); when the
row count then differs from the index's (rows were deleted, e.g. by `errlearn reindex`), the index is
rebuilt from the whole table. A check between writes costs one index lookup (`max(seq)`); rows
deleted with nothing written after them (not something errlearn does: `reindex` writes them all
again) are seen on the next write or forced refresh.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any, Final

from sqlalchemy import Connection, Engine, delete, func, select

from agent.retrieval.lexical import LexicalIndex
from agent.retrieval.terms import LexicalDoc
from agent.store.tables import LexicalDocRow, table_of

DOCS = table_of(LexicalDocRow)
REFRESH_S: Final = 1.0
OVERLAP: Final = 512


def write_docs(conn: Connection, collection: str, docs: Mapping[str, LexicalDoc]) -> None:
    """Replace the rows of these documents (each replaced row gets a new, higher `seq`)."""
    if not docs:
        return
    ids = list(docs)
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        conn.execute(delete(DOCS).where(DOCS.c.collection == collection, DOCS.c.doc_id.in_(chunk)))
        conn.execute(
            DOCS.insert(),
            [
                {
                    "collection": collection,
                    "doc_id": i,
                    "terms": " ".join(docs[i].terms),
                    "frames": {"weights": dict(docs[i].frames), "own": sorted(docs[i].own)},
                }
                for i in chunk
            ],
        )


def clear_docs(conn: Connection, collection: str) -> None:
    conn.execute(delete(DOCS).where(DOCS.c.collection == collection))


class SyncedIndex:
    """A `LexicalIndex` of one collection, kept in step with the table (see the module docstring)."""

    def __init__(self, engine: Engine, collection: str) -> None:
        self.engine = engine
        self.collection = collection
        self.index = LexicalIndex()
        self._last_seq = 0
        self._state: tuple[int, int] | None = None
        self._checked = 0.0
        self._lock = threading.Lock()

    def refresh(self, *, force: bool = False) -> LexicalIndex:
        """The index, caught up with the table when it was last checked over `REFRESH_S` ago (or `force`)."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._checked < REFRESH_S:
                return self.index
            self._checked = now
            with self.engine.connect() as conn:
                where = DOCS.c.collection == self.collection
                # max(seq) is one index lookup; the count (a scan) only when something was written
                newest = int(conn.execute(select(func.coalesce(func.max(DOCS.c.seq), 0)).where(where)).scalar_one())
                if self._state is not None and newest == self._state[0] and not force:
                    return self.index
                current = (newest, int(conn.execute(select(func.count()).where(where)).scalar_one()))
                if current == self._state:
                    return self.index
                rows = conn.execute(
                    select(DOCS.c.seq, DOCS.c.doc_id, DOCS.c.terms, DOCS.c.frames)
                    .where(where, DOCS.c.seq > self._last_seq - OVERLAP)
                    .order_by(DOCS.c.seq)
                ).all()
                self._load(rows)
                if len(self.index) != current[1]:
                    self.index = LexicalIndex()
                    self._last_seq = 0
                    self._load(
                        conn.execute(
                            select(DOCS.c.seq, DOCS.c.doc_id, DOCS.c.terms, DOCS.c.frames)
                            .where(where)
                            .order_by(DOCS.c.seq)
                        ).all()
                    )
                self._state = current
            return self.index

    def _load(self, rows: Sequence[tuple[int, str, str, dict[str, Any]]]) -> None:
        for seq, doc_id, terms, frames in rows:
            weights = {str(k): float(v) for k, v in dict(frames.get("weights") or {}).items()}
            own = frozenset(str(name) for name in frames.get("own") or ())
            self.index.put(doc_id, LexicalDoc(tuple(terms.split()), weights, own))
            self._last_seq = max(self._last_seq, int(seq))
