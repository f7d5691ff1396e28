"""The stored merge decisions as ingest reads them: one cached map, reloaded when a decision changes.

Every write to `pattern_aliases` (the merge pass, an admin unmerge) also stamps a new version in the
`meta` table, in the same transaction. The writer reads that one row inside each of its transactions
and reloads the whole map only when the stamp moved: a decision recorded by any replica holds on every
replica from its next commit, as with a per-batch lookup, but a commit costs one single-row read
instead of an indexed lookup per distinct fingerprint.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, insert, select, update

from agent.store.tables import MetaRow, PatternAliasRow, PatternRow, table_of

VERSION_KEY = "pattern_aliases_version"
META = table_of(MetaRow)
ALIASES = table_of(PatternAliasRow)
PATTERNS = table_of(PatternRow)


def bump_version(conn: Connection) -> None:
    """Call in every transaction that changes `pattern_aliases`: the writers on every replica reload."""
    stamp = uuid.uuid4().hex
    if conn.execute(update(META).where(META.c.key == VERSION_KEY).values(value=stamp)).rowcount == 0:
        conn.execute(insert(META).values(key=VERSION_KEY, value=stamp))


def load_targets(conn: Connection) -> dict[str, str]:
    """fingerprint -> the pattern id its events go to, for every stored merge whose target exists."""
    stmt = (
        select(ALIASES.c.fingerprint, ALIASES.c.target_id)
        .join(PATTERNS, PATTERNS.c.id == ALIASES.c.target_id)
        .where(ALIASES.c.kind == "merge")
    )
    return {fp: target for fp, target in conn.execute(stmt)}


class AliasMap:
    """The merge targets, cached per version stamp. Used by one writer thread (not thread-safe)."""

    _UNLOADED = object()

    def __init__(self) -> None:
        self._version: object = self._UNLOADED
        self._targets: dict[str, str] = {}
        self.reloads = 0

    def targets(self, conn: Connection) -> dict[str, str]:
        """The current map, as of this transaction (reloaded when another transaction changed it)."""
        version = conn.execute(select(META.c.value).where(META.c.key == VERSION_KEY)).scalar()
        if version != self._version:
            self._targets = load_targets(conn)
            self._version = version
            self.reloads += 1
        return self._targets

    def invalidate(self) -> None:
        """Forget the cache (after a failed transaction: the next one reloads)."""
        self._version = self._UNLOADED
        self._targets = {}
