"""Rendering the guide: deterministic, atomic, keeps the hand-written section, survives hostile text."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest

from agent.guide.importing import content_from_markdown
from agent.guide.models import AuthorKind, Authorship, GuideEntry, GuideStatus, entry_id
from agent.guide.render import (
    DEFAULT_MANUAL,
    MANUAL_END,
    MANUAL_START,
    GuideFileNotManaged,
    anchor,
    manual_section,
    render_entry,
    render_guide,
    render_to_file,
    write_atomic,
)
from agent.retrieval.knowledge import parse_markdown
from tests.conftest import REPO

T = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def _entry(number: int, status: GuideStatus = GuideStatus.approved, **fields: object) -> GuideEntry:
    data: dict[str, object] = {
        "id": entry_id(number),
        "number": number,
        "status": status,
        "title": f"Database connection refused {number}",
        "description": "The API cannot reach PostgreSQL.",
        "error_type": "ConnectionRefusedError",
        "template": "connection to <*> refused",
        "symptoms": ["ConnectionRefusedError: connection to <*> refused"],
        "root_cause": "PostgreSQL is down or the host is wrong.",
        "solution_steps": ["Start the database.", "Check the host name."],
        "prevention_tips": ["Add a health check."],
        "commands": ["pg_isready -h db"],
        "author": Authorship(kind=AuthorKind.model, name="test", prompt_name="guide", prompt_version=1),
        "created_at": T,
        "updated_at": T,
        "approved_at": T,
    }
    data.update(fields)
    return GuideEntry.model_validate(data)


def test_render_is_deterministic_sorted_and_free_of_render_times() -> None:
    entries = [_entry(12), _entry(3), _entry(7, GuideStatus.draft), _entry(1000)]
    text = render_guide(entries)
    later = [e.model_copy(update={"updated_at": T + dt.timedelta(days=3)}) for e in reversed(entries)]
    assert render_guide(later) == text  # order and timestamps of the input do not matter
    ids = [e.id for e in parse_markdown(text, source="guide.md")]
    assert ids == ["ERROR-003", "ERROR-012", "ERROR-1000"]  # by number, approved only
    assert "ERROR-007" not in text
    assert "2026" not in text


def test_table_of_contents_links_every_entry() -> None:
    text = render_guide([_entry(1), _entry(2, title="Disk full: /var (ENOSPC)")])
    assert "- [ERROR-001: Database connection refused 1](#error-001-database-connection-refused-1)" in text
    assert "- [ERROR-002: Disk full: /var (ENOSPC)](#error-002-disk-full-var-enospc)" in text
    assert anchor("ERROR-002: Disk full: /var (ENOSPC)") == "error-002-disk-full-var-enospc"


def test_entry_uses_the_seed_format_and_parses_back() -> None:
    entry = _entry(1)
    text = render_entry(entry)
    assert text.startswith("## ERROR-001: Database connection refused 1\n")
    for label in (
        "**Description:**",
        "**Symptoms:**",
        "**Root cause:**",
        "**Solution:**",
        "**Prevention:**",
        "**Commands:**",
    ):
        assert label in text
    assert "Documentation only: errlearn never runs these commands." in text
    [parsed] = parse_markdown(text, source="g.md")
    assert list(parsed.sections) == ["Description", "Symptoms", "Root cause", "Solution", "Prevention", "Commands"]
    back = content_from_markdown(parsed)
    assert (back.title, back.description, back.root_cause) == (entry.title, entry.description, entry.root_cause)
    assert (back.symptoms, back.solution_steps, back.prevention_tips, back.commands) == (
        entry.symptoms,
        entry.solution_steps,
        entry.prevention_tips,
        entry.commands,
    )


def test_empty_sections_are_left_out() -> None:
    text = render_entry(_entry(4, description="", prevention_tips=[], commands=[], root_cause="  "))
    assert "**Description:**" not in text and "**Prevention:**" not in text and "**Commands:**" not in text
    assert "**Root cause:**" not in text


def test_hostile_model_text_cannot_add_entries_break_fences_or_fake_markers() -> None:
    evil = _entry(
        5,
        title="Bad\n## ERROR-999: injected",
        description=f"text {MANUAL_END} more\n\n# Heading",
        symptoms=["`tick` ``double`` error"],
        solution_steps=["step one\n## ERROR-998: also injected", "<!-- comment -->"],
        commands=["echo ```", f"cat x {MANUAL_START}", "~~~"],
    )
    text = render_guide([evil], manual="kept")
    entries = parse_markdown(text, source="g.md")
    assert [e.id for e in entries] == ["ERROR-005"]
    assert manual_section(text) == "kept"
    assert text.count(MANUAL_START) == 1 and text.count(MANUAL_END) == 1
    # The commands stay inside one code block, whatever backticks they hold.
    assert entries[0].sections["Commands"].count("echo ```") == 1
    assert "````bash" in text
    assert "- ``` `tick` ``double`` error ```" in text  # a code span longer than any backtick run inside


def test_manual_section_is_preserved_byte_for_byte(tmp_path: Path) -> None:
    path = tmp_path / "docs" / "GUIDE.md"
    assert render_to_file([_entry(1)], path) is True
    assert manual_section(path.read_text()) == DEFAULT_MANUAL
    manual = "## Team notes\n\n  Indented *text*, trailing spaces   \n\n```\ncode\n```\n\n## ERROR-050: Written by hand"
    text = path.read_text().replace(DEFAULT_MANUAL, manual)
    path.write_text(text)

    assert render_to_file([_entry(1), _entry(2)], path) is True
    rendered = path.read_text()
    assert manual_section(rendered) == manual
    assert "## ERROR-002:" in rendered
    assert render_to_file([_entry(2), _entry(1)], path) is False  # same entries: nothing written
    assert path.read_text() == rendered


def test_a_hand_written_file_without_markers_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "GUIDE.md"
    path.write_text("# Our guide\n\n## ERROR-001: Hand written\n\n**Solution:** fix it\n")
    with pytest.raises(GuideFileNotManaged, match="errlearn guide import"):
        render_to_file([_entry(1)], path)
    assert path.read_text().startswith("# Our guide")
    assert render_to_file([_entry(1)], path, force=True)
    assert (tmp_path / "GUIDE.md.bak").read_text().startswith("# Our guide")
    assert manual_section(path.read_text()) == DEFAULT_MANUAL


def test_unmatched_marker_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "GUIDE.md"
    path.write_text(f"# Guide\n{MANUAL_START}\nnotes\n")
    with pytest.raises(GuideFileNotManaged, match="unmatched"):
        render_to_file([], path)


def test_write_is_atomic_and_leaves_no_temporary_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "GUIDE.md"
    write_atomic(path, "old\n")

    def crash(src: object, dst: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n"  # never half-written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["GUIDE.md"]


def test_the_shipped_guide_is_the_render_of_zero_entries() -> None:
    shipped = (REPO / "docs" / "ERROR_PREVENTION_GUIDE.md").read_text(encoding="utf-8")
    assert manual_section(shipped) is not None
    assert shipped == render_guide([], manual_section(shipped) or "")
