"""Review and import: ids never reused, transitions, revision history, merge/supersede, people's entries."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update
from sqlalchemy.exc import DBAPIError

from agent.guide import allocator, repo
from agent.guide.models import GuideStatus, RevisionAction
from agent.guide.review import EntryEdit, InvalidTransition
from agent.guide.tables import GuideEntryRow, GuideRevisionRow
from agent.retrieval.knowledge import KnowledgeEntry
from agent.store.tables import table_of
from tests.test_guide_support import T0, GuideEnv, guide_env, seed_two_errors

__all__ = ["guide_env"]
ENTRIES = table_of(GuideEntryRow)
REVISIONS = table_of(GuideRevisionRow)

PEOPLE_GUIDE = """\
# Our error guide

## ERROR-001: Database connection refused

**Description:** The API cannot reach PostgreSQL.

**Symptoms:**
- `psycopg.OperationalError: connection failed: Connection refused`

**Root cause**: PostgreSQL is down or the host is wrong.

**Solution:**
1. Start the database.
2. Check `DATABASE_URL`.

**Commands:**
```bash
pg_isready -h db
```

## ERROR-050 - Disk full

### Symptoms
`OSError: [Errno 28] No space left on device`

### Solution
Free space on the data volume.

### Prevention
- Alert at 80 % disk use.
"""


def _drafts(env: GuideEnv) -> list[str]:
    seed_two_errors(env)
    report = env.guide.learning.run("manual")
    assert report.drafts_created == 2, report
    return report.drafted_ids


def test_ids_are_allocated_once_and_never_reused(guide_env: GuideEnv) -> None:
    with guide_env.engine.begin() as conn:
        assert [allocator.allocate_number(conn) for _ in range(3)] == [1, 2, 3]
    with guide_env.engine.connect() as conn, pytest.raises(RuntimeError), conn.begin():
        assert allocator.allocate_number(conn) == 4
        raise RuntimeError("rolled back")  # an allocation that rolls back is not spent
    assert _drafts(guide_env) == ["ERROR-004", "ERROR-005"]
    guide_env.guide.reject("ERROR-005", by="alice", reason="wrong")
    with guide_env.engine.begin() as conn:  # even a deleted entry's id stays spent
        conn.execute(delete(REVISIONS).where(REVISIONS.c.entry_id == "ERROR-004"))
        conn.execute(delete(repo.LINKS).where(repo.LINKS.c.entry_id == "ERROR-004"))
        conn.execute(delete(ENTRIES).where(ENTRIES.c.id == "ERROR-004"))
        assert allocator.allocate_number(conn) == 6


def test_numbers_used_by_guide_texts_in_the_knowledge_base_are_skipped(guide_env: GuideEnv) -> None:
    entry = KnowledgeEntry(
        id="ERROR-010",
        title="Seed entry",
        kind="guide",
        sections={"Solution": "x"},
        text="## ERROR-010: Seed entry\n**Solution:** x",
        source="seed/guide.md",
    )
    guide_env.runtime.retrieval().import_knowledge([entry], T0)
    assert _drafts(guide_env) == ["ERROR-011", "ERROR-012"]


def test_edit_then_approve_keeps_an_append_only_history(guide_env: GuideEnv) -> None:
    assert _drafts(guide_env) == ["ERROR-001", "ERROR-002"]
    guide_env.clock.advance(minutes=1)
    outcome = guide_env.guide.approve(
        "error-001", by="alice", changes=EntryEdit(title="Database connection refused", commands=["pg_isready"])
    )
    entry = outcome.entry
    assert (entry.status, entry.title, entry.commands, entry.approved_by) == (
        GuideStatus.approved,
        "Database connection refused",
        ["pg_isready"],
        "alice",
    )
    assert entry.approved_at == T0 + dt.timedelta(minutes=1)
    assert entry.author.name == "test:scripted"  # the draft's author stays; the reviewer is recorded apart
    with guide_env.engine.connect() as conn:
        history = repo.revisions(conn, "ERROR-001")
    assert [(r.revision, r.action, r.status) for r in history] == [
        (1, RevisionAction.drafted, GuideStatus.draft),
        (2, RevisionAction.edited, GuideStatus.draft),
        (3, RevisionAction.approved, GuideStatus.approved),
    ]
    assert history[0].content.title != "Database connection refused"  # the model's wording is kept in r1
    assert history[1].author == "person:alice" and history[1].content.title == "Database connection refused"
    assert "## ERROR-001: Database connection refused" in guide_env.guide.guide_path.read_text()


def test_revisions_cannot_be_changed(guide_env: GuideEnv) -> None:
    _drafts(guide_env)
    with pytest.raises(DBAPIError, match="append-only"), guide_env.engine.begin() as conn:
        conn.execute(update(REVISIONS).where(REVISIONS.c.entry_id == "ERROR-001").values(author="someone else"))
    with guide_env.engine.connect() as conn:
        assert repo.revisions(conn, "ERROR-001")[0].author.startswith("test:scripted")


def test_transitions_that_make_no_sense_are_refused(guide_env: GuideEnv) -> None:
    _drafts(guide_env)
    guide_env.guide.approve("ERROR-001", by="alice")
    with pytest.raises(InvalidTransition, match="superseded or merged instead"):
        guide_env.guide.reject("ERROR-001", by="bob", reason="changed my mind")
    guide_env.guide.reject("ERROR-002", by="bob", reason="no")
    with pytest.raises(InvalidTransition, match="rejected"):
        guide_env.guide.approve("ERROR-002", by="bob")
    with pytest.raises(InvalidTransition):
        guide_env.guide.edit("ERROR-002", EntryEdit(title="x"), by="bob")
    with pytest.raises(repo.EntryNotFound):
        guide_env.guide.approve("ERROR-404", by="bob")
    assert guide_env.guide.approve("ERROR-001", by="carol").entry.approved_by == "alice"  # already approved: no-op


def test_a_stale_review_is_refused(guide_env: GuideEnv) -> None:
    _drafts(guide_env)
    with guide_env.engine.begin() as conn:
        seen = repo.require_entry(conn, "ERROR-001")
        conn.execute(update(ENTRIES).where(ENTRIES.c.id == "ERROR-001").values(revision=seen.revision + 1))
        with pytest.raises(repo.ConcurrentChange):
            repo.save_change(conn, seen, {"title": "x"}, action=RevisionAction.edited, author="a", now=T0)


def test_merge_moves_patterns_and_items_and_retires_the_source(guide_env: GuideEnv) -> None:
    _drafts(guide_env)
    guide_env.guide.approve("ERROR-001", by="alice")
    guide_env.guide.approve("ERROR-002", by="alice")
    assert guide_env.runtime.retrieval().knowledge_entry("ERROR-002") is not None
    guide_env.guide.edit("ERROR-002", EntryEdit(prevention_tips=["Alert at 80 % disk use."]), by="alice")

    outcome = guide_env.guide.merge("ERROR-002", "ERROR-001", by="bob")
    source, target = outcome.entries
    assert (source.status, source.superseded_by) == (GuideStatus.superseded, "ERROR-001")
    assert set(target.pattern_ids) == {guide_env.pattern_id("ConnectionRefusedError"), guide_env.pattern_id("OSError")}
    assert "Alert at 80 % disk use." in target.prevention_tips
    assert any(s.startswith("OSError") for s in target.symptoms)
    assert guide_env.runtime.retrieval().knowledge_entry("ERROR-002") is None  # no longer retrieved
    text = guide_env.guide.guide_path.read_text()
    assert "## ERROR-002" not in text and "OSError" in text
    with pytest.raises(InvalidTransition):
        guide_env.guide.merge("ERROR-002", "ERROR-001", by="bob")  # already superseded


def test_supersede_moves_patterns_but_not_text(guide_env: GuideEnv) -> None:
    _drafts(guide_env)
    retired, new = guide_env.guide.supersede("ERROR-001", "ERROR-002", by="bob").entries
    assert (retired.status, retired.superseded_by) == (GuideStatus.superseded, "ERROR-002")
    assert guide_env.pattern_id("ConnectionRefusedError") in new.pattern_ids
    assert not any(s.startswith("ConnectionRefusedError") for s in new.symptoms)
    with pytest.raises(InvalidTransition, match="itself"):
        guide_env.guide.supersede("ERROR-002", "ERROR-002", by="bob")


def test_import_keeps_people_ids_and_moves_the_allocator_past_them(guide_env: GuideEnv, tmp_path: Path) -> None:
    source = tmp_path / "people.md"
    source.write_text(PEOPLE_GUIDE)
    report = guide_env.guide.import_markdown(source, by="dana")
    assert report.imported == ["ERROR-001", "ERROR-050"] and report.rendered and not report.warnings

    first = guide_env.guide.entry("ERROR-001")
    assert first is not None
    assert (first.status, first.author.kind.value, first.author.name, first.approved_by) == (
        GuideStatus.approved,
        "person",
        "dana",
        "dana",
    )
    assert first.symptoms == ["psycopg.OperationalError: connection failed: Connection refused"]
    assert first.solution_steps == ["Start the database.", "Check `DATABASE_URL`."]
    assert first.commands == ["pg_isready -h db"] and first.root_cause.startswith("PostgreSQL is down")
    disk = guide_env.guide.entry("ERROR-050")
    assert disk is not None and disk.prevention_tips == ["Alert at 80 % disk use."]
    assert guide_env.runtime.retrieval().knowledge_entry("ERROR-050") is not None  # retrievable by diagnoses

    seed_two_errors(guide_env)
    drafted = guide_env.guide.learning.run("manual").drafted_ids
    assert drafted and drafted[0] == "ERROR-051"

    # Importing again, or importing the rendered guide, changes nothing.
    again = guide_env.guide.import_markdown(source, by="dana")
    assert again.imported == [] and again.existing == ["ERROR-001", "ERROR-050"]
    rendered = guide_env.guide.import_markdown(guide_env.guide.guide_path, by="dana")
    assert rendered.imported == []


def test_reindex_puts_every_approved_entry_back(guide_env: GuideEnv) -> None:
    _drafts(guide_env)
    guide_env.guide.approve("ERROR-001", by="alice")
    retrieval = guide_env.runtime.retrieval()
    retrieval.reindex()  # rebuilds the collections from the knowledge table, which holds the entry
    assert retrieval.store.count("knowledge") == 1
    with guide_env.engine.connect() as conn:
        assert conn.execute(select(allocator.KNOWLEDGE.c.id)).scalars().all() == ["ERROR-001"]
    assert guide_env.guide.reindex() == 0  # unchanged: nothing to write
