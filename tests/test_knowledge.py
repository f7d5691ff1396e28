"""Knowledge import: guide, runbook and note Markdown parsed into entries; folders loaded safely."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from agent.retrieval.knowledge import (
    MAX_FILE_BYTES,
    MAX_ID_CHARS,
    MAX_SECTION_CHARS,
    MAX_TEXT_CHARS,
    KnowledgeEntry,
    entry_id_for,
    load_path,
    parse_markdown,
    split_front_matter,
)
from tests.conftest import REPO, evaldata_dir

GUIDE = """\
# Error guide

Intro text that belongs to no entry.

## ERROR-001: Database connection refused

**Description:** The API cannot reach PostgreSQL.

**Symptoms:**
- `psycopg.OperationalError: connection failed: Connection refused`

**Root cause**: PostgreSQL is down or the host is wrong.

**Solution:**
1. Start the database.
2. **Warning:** check the host first.

**Commands:**
```bash
**Solution:** this is inside a code block
# not a heading
pg_isready -h db
```

## ERROR-002 - Disk full

### Symptoms
`OSError: [Errno 28] No space left on device`

### Solution
Free space.

## Appendix

Not an entry.
"""


def _entry(entries: list[KnowledgeEntry], ident: str) -> KnowledgeEntry:
    return next(e for e in entries if e.id == ident)


# -- guide format --------------------------------------------------------------------------------


def test_guide_file_gives_one_entry_per_error_heading() -> None:
    entries = parse_markdown(GUIDE, source="guide/errors.md")
    assert [e.id for e in entries] == ["ERROR-001", "ERROR-002"]
    first, second = entries
    assert (first.title, first.kind, first.source, first.alert_name) == (
        "Database connection refused",
        "guide",
        "guide/errors.md",
        None,
    )
    assert list(first.sections) == ["Description", "Symptoms", "Root cause", "Solution", "Commands"]
    assert first.sections["Description"] == "The API cannot reach PostgreSQL."
    assert first.sections["Root cause"] == "PostgreSQL is down or the host is wrong."
    # An inline bold remark is not a section; labels and headings inside a code block are code.
    assert "**Warning:** check the host first." in first.sections["Solution"]
    assert "**Solution:** this is inside a code block" in first.sections["Commands"]
    assert "# not a heading" in first.sections["Commands"]
    assert first.text.startswith("## ERROR-001: Database connection refused")
    assert "ERROR-002" not in first.text and "Intro text" not in first.text
    # Sub-headings work as well as labels; the entry ends at the next heading of its level.
    assert (second.title, list(second.sections)) == ("Disk full", ["Symptoms", "Solution"])
    assert "Appendix" not in second.text and second.sections["Solution"] == "Free space."


def test_guide_entries_nested_at_level_three_and_ids_normalised() -> None:
    text = """\
# Guide
## Database
### [error-7]: Pool exhausted
#### Root Cause
Too many sessions.
#### How to fix
Raise the pool size.
## Network
### ERROR-008
**Solution:** retry
"""
    entries = parse_markdown(text, source="g.md")
    assert [(e.id, e.title) for e in entries] == [("ERROR-7", "Pool exhausted"), ("ERROR-008", "ERROR-008")]
    assert entries[0].sections == {"Root cause": "Too many sessions.", "Solution": "Raise the pool size."}
    assert "Network" not in entries[0].text
    assert entries[1].sections == {"Solution": "retry"}


def test_duplicate_guide_id_in_one_file_is_refused() -> None:
    text = "## ERROR-001: a\ntext\n## ERROR-001: b\ntext\n"
    with pytest.raises(ValueError, match=r"dup\.md: ERROR-001 appears twice \(lines 1 and 3\)"):
        parse_markdown(text, source="dup.md")


# -- runbooks ----------------------------------------------------------------------------------------

RUNBOOK = """\
---
title: Kube Pod Crash Looping
weight: 20
---

# KubePodCrashLooping

## Meaning

Pod is restarting over and over.

## Impact

Service degradation.

## Diagnosis

- Check `kubectl -n <namespace> describe pod <pod>`.

### Deeper

Still part of Diagnosis.

## Mitigation

Fix the [app](https://example.com/docs).
"""


def test_runbook_title_sections_alert_and_front_matter_stripped() -> None:
    (entry,) = parse_markdown(RUNBOOK, source="kubernetes/KubePodCrashLooping.md")
    assert entry.id == "kb_kubernetes/kubepodcrashlooping"
    assert (entry.title, entry.kind, entry.alert_name) == ("KubePodCrashLooping", "runbook", "KubePodCrashLooping")
    assert list(entry.sections) == ["Meaning", "Impact", "Diagnosis", "Mitigation"]
    assert "### Deeper\n\nStill part of Diagnosis." in entry.sections["Diagnosis"]
    assert entry.text.startswith("# KubePodCrashLooping") and "weight: 20" not in entry.text


@pytest.mark.parametrize(
    ("source", "text", "title", "alert"),
    [
        # Spaced title: the file name carries the alert.
        (
            "k/CPUThrottlingHigh.md",
            "# CPU Throttling High\n## Meaning\nx\n",
            "CPU Throttling High",
            "CPUThrottlingHigh",
        ),
        # A heading copied from a sibling page: the file name wins, the front matter gives the title.
        (
            "p/PrometheusRemoteWriteBehind.md",
            "---\ntitle: Prometheus Remote Write Behind\n---\n# PrometheusRemoteStorageFailures\n## Meaning\nx\n",
            "Prometheus Remote Write Behind",
            "PrometheusRemoteWriteBehind",
        ),
        # A one-word alert counts only when the file, the title and a Meaning section agree.
        ("general/Watchdog.md", "# Watchdog\n## Meaning\nalways firing\n", "Watchdog", "Watchdog"),
        ("ops/database.md", "# Database\n## Mitigation\nrestart\n", "Database", None),
        # Alert-like title in a differently named file; explicit front matter and "Alert:" titles.
        ("crashloop.md", "# KubePodCrashLooping\n## Meaning\nx\n", "KubePodCrashLooping", "KubePodCrashLooping"),
        ("a.md", "---\nalert: HighErrorRate\n---\n# Too many 5xx\n## Diagnosis\nx\n", "Too many 5xx", "HighErrorRate"),
        ("b.md", "# Alert: QueueBacklog\n## Mitigation\nscale\n", "Alert: QueueBacklog", "QueueBacklog"),
        # Front matter title when there is no heading; the file name when there is neither.
        ("c.md", "---\ntitle: Slow disks\n---\nSome text.\n", "Slow disks", None),
        ("notes/slow_disk-tips.md", "Some text.\n", "slow disk tips", None),
    ],
)
def test_titles_and_alert_names(source: str, text: str, title: str, alert: str | None) -> None:
    (entry,) = parse_markdown(text, source=source)
    assert (entry.title, entry.alert_name) == (title, alert)


def test_note_has_first_heading_title_and_overview() -> None:
    (entry,) = parse_markdown("Intro line.\n\n# How we deploy\n\n## Steps\n\nrun make\n", source="deploy.md")
    assert (entry.id, entry.title, entry.kind) == ("kb_deploy", "How we deploy", "note")
    assert entry.sections == {"Overview": "Intro line.", "Steps": "run make"}
    (plain,) = parse_markdown("just some words\nand more", source="x/Plain Note.md")
    assert (plain.kind, plain.title, plain.sections) == (
        "note",
        "Plain Note",
        {"Overview": "just some words\nand more"},
    )


def test_file_starting_with_a_section_heading_has_no_heading_title() -> None:
    (entry,) = parse_markdown("## Symptoms\n`boom`\n## Mitigation\nfix it\n", source="dir/boom-errors.md")
    assert entry.title == "boom errors"
    assert list(entry.sections) == ["Symptoms", "Mitigation"] and entry.kind == "runbook"


def test_setext_headings_bold_labels_without_headings_and_crlf_bom() -> None:
    text = "\ufeffRedis down\r\n==========\r\n\r\nSymptoms\r\n--------\r\n`ECONNREFUSED 6379`\r\n\r\nMitigation\r\n---\r\nrestart\r\n"
    (entry,) = parse_markdown(text, source="redis.md")
    assert entry.title == "Redis down"
    assert entry.sections == {"Symptoms": "`ECONNREFUSED 6379`", "Mitigation": "restart"}
    assert "\r" not in entry.text
    (labelled,) = parse_markdown("# Queue stuck\n**Symptoms:** jobs wait\n**Fix:**\nrestart worker\n", source="q.md")
    assert labelled.sections == {"Symptoms": "jobs wait", "Fix": "restart worker"}


def test_several_runbooks_in_one_file_get_anchored_ids() -> None:
    text = """\
# Database runbooks

## Connection refused
### Symptoms
`ECONNREFUSED`
### Mitigation
start it

## Too many clients
### Symptoms
`sorry, too many clients already`

## Connection refused
### Symptoms
again
"""
    entries = parse_markdown(text, source="ops/Database Runbooks.md")
    assert [e.id for e in entries] == [
        "kb_ops/database-runbooks#connection-refused",
        "kb_ops/database-runbooks#too-many-clients",
        "kb_ops/database-runbooks#connection-refused-1",
    ]
    assert [e.title for e in entries] == ["Connection refused", "Too many clients", "Connection refused"]
    assert entries[0].sections == {"Symptoms": "`ECONNREFUSED`", "Mitigation": "start it"}
    assert "Too many clients" not in entries[0].text
    assert all(e.kind == "runbook" for e in entries)


def test_single_runbook_with_subsections_is_not_split() -> None:
    # Level-2 headings that are section names mean one runbook, even with ### below each.
    text = "# etcdNoLeader\n## Diagnosis\n### Slow disk\na\n### Network\nb\n## Mitigation\n### Restore\nc\n"
    (entry,) = parse_markdown(text, source="etcd/etcdNoLeader.md")
    assert list(entry.sections) == ["Diagnosis", "Mitigation"]
    how_to = "# Deploy\n## Step 1: build\n### Commands\nmake\n## Step 2: push\n### Commands\npush\n"
    (entry,) = parse_markdown(how_to, source="deploy.md")
    assert (entry.kind, list(entry.sections)) == ("note", ["Step 1: build", "Step 2: push"])


def test_front_matter_variants() -> None:
    assert split_front_matter("---\ntitle: A\n---\nbody") == ({"title": "A"}, "body")
    assert split_front_matter('+++\ntitle = "B"\n+++\nbody') == ({"title": "B"}, "body")
    assert split_front_matter("---\n---\nbody") == ({}, "body")
    # A thematic break around plain prose is not front matter: nothing is cut.
    for text in ("---\nJust a sentence of prose.\n---\nbody", "---\n# Title\n---\nbody", "---\n[broken: yaml\n---\nb"):
        assert split_front_matter(text) == ({}, text)
    assert split_front_matter("---\nno closing fence\n") == ({}, "---\nno closing fence\n")


def test_empty_or_front_matter_only_file_gives_nothing() -> None:
    assert parse_markdown("", source="e.md") == []
    assert parse_markdown("---\ntitle: x\n---\n\n  \n", source="e.md") == []


def test_text_and_sections_are_bounded() -> None:
    big = "\n".join(f"line {i} " + "x" * 80 for i in range(3000))
    (entry,) = parse_markdown(f"# Huge\n## Diagnosis\n{big}\n## Mitigation\nsmall\n", source="huge.md")
    assert len(entry.text) <= MAX_TEXT_CHARS and entry.text.endswith("[... truncated]")
    assert len(entry.sections["Diagnosis"]) <= MAX_SECTION_CHARS
    assert entry.sections["Mitigation"] == "small"


# -- ids ---------------------------------------------------------------------------------------------


def test_entry_ids_are_stable_slugs_and_bounded() -> None:
    assert entry_id_for("ops/DB Down.md") == "kb_ops/db-down"
    assert entry_id_for("ops\\DB Down.md") == "kb_ops/db-down"
    assert entry_id_for("Café/Résumé.markdown", "a-b") == "kb_cafe/resume#a-b"
    assert entry_id_for("!!!.md") == "kb_entry"
    long_a, long_b = entry_id_for("a" * 300 + "/x.md"), entry_id_for("a" * 300 + "/y.md")
    assert len(long_a) <= MAX_ID_CHARS and len(long_b) <= MAX_ID_CHARS and long_a != long_b
    assert long_a == entry_id_for("a" * 300 + "/x.md")


def test_entries_are_hashable_and_frozen() -> None:
    (entry,) = parse_markdown(RUNBOOK, source="k.md")
    assert entry in {entry}
    with pytest.raises(AttributeError):
        entry.title = "other"  # type: ignore[misc]


# -- embedding text ------------------------------------------------------------------------------


def test_embedding_text_puts_what_and_why_before_fixes() -> None:
    entry = KnowledgeEntry(
        id="kb_x",
        title="KubeJobFailed",
        kind="runbook",
        sections={
            "Mitigation": "Delete the job.",
            "Impact": "Work not done.",
            "Root cause": "Bad image.",
            "Symptoms": "`BackoffLimitExceeded`",
            "Meaning": "A job failed.",
        },
        text="",
        source="x.md",
        alert_name="KubeJobFailed",
    )
    lines = entry.embedding_text().split("\n")
    assert lines[0] == "KubeJobFailed - Kube Job Failed"
    assert [line.split(":")[0] for line in lines[1:]] == ["Symptoms", "Meaning", "Root cause", "Mitigation", "Impact"]
    assert lines[1] == "Symptoms: BackoffLimitExceeded"


def test_embedding_text_is_plain_folded_and_bounded() -> None:
    (entry,) = parse_markdown(RUNBOOK, source="kubernetes/KubePodCrashLooping.md")
    out = entry.embedding_text()
    assert "https://" not in out and "**" not in out and "`" not in out and "  " not in out
    assert "Fix the app." in out and "<namespace>" in out  # link text and placeholders stay
    assert "Kube Pod Crash Looping" in out.split("\n")[0]
    for limit in (1, 15, 60, 300, 2000):
        assert len(entry.embedding_text(limit)) <= limit
    assert entry.embedding_text(15) == "KubePodCrashLoo"
    with pytest.raises(ValueError):
        entry.embedding_text(0)


def test_one_long_section_cannot_push_out_the_others() -> None:
    text = "# Slow API\n## Meaning\n" + "slow " * 2000 + "\n<details><summary>Full context</summary>x</details>\n"
    text += "## Diagnosis\nCheck the pool.\n"
    (entry,) = parse_markdown(text, source="slow.md")
    out = entry.embedding_text(2000)
    assert "Diagnosis: Check the pool." in out and len(out) <= 2000
    assert "Full context" not in out and "<details>" not in out


# -- loading folders ---------------------------------------------------------------------------------


def _write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def test_load_folder_recursive_skipping_index_and_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write(tmp_path, "b/Second.md", "# Second\n## Symptoms\ns\n## Mitigation\nm\n")
    _write(tmp_path, "a.md", "# First\ntext\n")
    _write(tmp_path, "guide.markdown", "## ERROR-001: One\n**Solution:** x\n")
    _write(tmp_path, "README.md", "# About this folder\n")
    _write(tmp_path, "b/_index.md", "---\ntitle: b\n---\n")
    _write(tmp_path, ".git/HEAD.md", "# hidden\n")
    _write(tmp_path, "notes.txt", "# not markdown\n")
    _write(tmp_path, "latin1.md", "# Caf\xe9\n".encode("latin-1"))
    _write(tmp_path, "binary.md", b"# x\x00\x01\n")
    _write(tmp_path, "huge.md", b"#" * (MAX_FILE_BYTES + 1))
    (tmp_path / "dangling.md").symlink_to(tmp_path / "missing-target.md")
    with caplog.at_level(logging.WARNING, logger="agent.retrieval.knowledge"):
        entries = load_path(tmp_path)
    assert [(e.id, e.source) for e in entries] == [
        ("kb_a", "a.md"),
        ("kb_b/second", "b/Second.md"),
        ("ERROR-001", "guide.markdown"),
    ]
    warned = "\n".join(r.getMessage() for r in caplog.records)
    for name, reason in [
        ("latin1.md", "not UTF-8"),
        ("binary.md", "binary"),
        ("huge.md", "bytes"),
        ("dangling.md", ""),
    ]:
        assert re.search(rf"{name}.*{reason}", warned), (name, warned)
    assert load_path(tmp_path) == entries  # stable across runs


def test_load_single_file_even_if_it_is_a_readme(tmp_path: Path) -> None:
    path = _write(tmp_path, "sub/README.md", "# Read me\n## Mitigation\nx\n")
    (entry,) = load_path(path)
    assert (entry.id, entry.source, entry.kind) == ("kb_readme", "README.md", "runbook")


def test_duplicate_ids_across_files_name_both(tmp_path: Path) -> None:
    _write(tmp_path, "one.md", "## ERROR-001: a\nx\n")
    _write(tmp_path, "two/more.md", "## ERROR-001: b\ny\n")
    with pytest.raises(ValueError, match=r"'ERROR-001' in one\.md and two/more\.md"):
        load_path(tmp_path)
    # Two paths that slug alike collide too, and say so instead of overwriting each other.
    _write(tmp_path / "x", "A b.md", "# a\n")
    _write(tmp_path / "x", "a-B.md", "# b\n")
    with pytest.raises(ValueError, match=r"'kb_a-b' in A b\.md and a-B\.md"):
        load_path(tmp_path / "x")


def test_missing_path_raises(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_path(tmp_path / "nope")


# -- our starter knowledge/ ------------------------------------------------------------------------

STARTER = {
    "kb_database-connection-refused": "Connection refused",
    "kb_container-oom-killed": "OOMKilled",
    "kb_ollama-model-not-found": "not found, try pulling it first",
    "kb_cuda-out-of-memory": "CUDA out of memory",
    "kb_port-already-in-use": "EADDRINUSE",
    "kb_disk-full": "No space left on device",
    "kb_dns-resolution-failure": "Temporary failure in name resolution",
    "kb_websocket-disconnects": "1006",
    "kb_database-migration-mismatch": "Can't locate revision",
}


RUNBOOK_SECTIONS = ["Symptoms", "Meaning", "Diagnosis", "Mitigation", "Prevention"]
MIN_STARTER_RUNBOOKS = 60


def _starter() -> dict[str, KnowledgeEntry]:
    return {e.id: e for e in load_path(REPO / "knowledge")}


def test_repo_knowledge_folder_loads_every_starter_entry() -> None:
    entries = _starter()  # load_path itself refuses duplicate ids
    assert set(STARTER) <= set(entries), set(STARTER) - set(entries)
    assert len(entries) >= MIN_STARTER_RUNBOOKS
    for ident, entry in entries.items():
        assert entry.kind == "runbook", ident
        assert list(entry.sections) == RUNBOOK_SECTIONS, f"{ident}: sections must be exactly {RUNBOOK_SECTIONS}"
        assert all(entry.sections[name].strip() for name in RUNBOOK_SECTIONS), f"{ident}: empty section"
        assert entry.sections["Symptoms"].count("`") >= 4, f"{ident}: quote exact error messages in Symptoms"
        assert len(entry.text) <= MAX_TEXT_CHARS
    for ident, needle in STARTER.items():
        assert needle in entries[ident].sections["Symptoms"], ident
        assert needle in entries[ident].embedding_text(), ident  # Symptoms come first, so they survive the cut


def test_repo_runbooks_have_distinct_titles_kebab_names_and_a_runbook_size() -> None:
    entries = _starter()
    titles = [e.title for e in entries.values()]
    assert all(titles) and len(set(titles)) == len(titles), "every runbook needs its own title"
    for entry in entries.values():
        assert re.fullmatch(r"[a-z0-9]+(?:-[a-z0-9]+)*\.md", entry.source), f"{entry.source}: use a kebab-case name"
        lines = (REPO / "knowledge" / entry.source).read_text(encoding="utf-8").count("\n")
        assert 40 <= lines <= 90, f"{entry.source}: {lines} lines, keep runbooks between 40 and 90"
        # The first sentence of Meaning is what a diagnosis states as the root cause: it must be a sentence.
        first = re.split(r"(?<=[.!?])\s", entry.sections["Meaning"].strip(), maxsplit=1)[0]
        assert len(first.split()) >= 8 and first.endswith((".", "!", "?")), f"{entry.id}: {first!r}"
        diagnosis = entry.sections["Diagnosis"]
        assert re.search(r"(?m)^1\. ", diagnosis) and "`" in diagnosis, f"{entry.id}: numbered checks with commands"


def test_knowledge_readme_table_lists_exactly_the_runbooks() -> None:
    readme = (REPO / "knowledge" / "README.md").read_text(encoding="utf-8")
    listed = set(re.findall(r"(?m)^\| `([^`]+\.md)` \|", readme))
    assert listed == {e.source for e in _starter().values()}


# -- recorded runbooks (../shared/evaldata) ------------------------------------------------------------


def test_evaldata_runbooks_all_parse_with_title_sections_and_alert() -> None:
    root = evaldata_dir()
    if root is None or not (root / "runbooks").is_dir():
        pytest.skip("evaldata runbooks absent: put them at ../shared/evaldata/runbooks or set ERRLEARN_EVALDATA")
    runbooks = root / "runbooks"
    entries = load_path(runbooks)
    files = [p for p in runbooks.rglob("*.md") if not p.name.startswith("_") and p.name != "SOURCE.md"]
    assert len(entries) == len(files) >= 100
    for entry in entries:
        assert entry.title and entry.sections and entry.kind == "runbook", entry.id
        # Every file there is named after its alert.
        assert entry.alert_name == Path(entry.source).stem, entry.id
        assert entry.id.startswith("kb_") and "_index" not in entry.id
        assert len(entry.embedding_text()) <= 2000
    by_alert = {e.alert_name: e for e in entries}
    crash = by_alert["KubePodCrashLooping"]
    assert list(crash.sections) == ["Meaning", "Impact", "Diagnosis", "Mitigation"]
    assert "kubectl" in crash.sections["Diagnosis"]
    with_all_four = [e for e in entries if {"Meaning", "Impact", "Diagnosis", "Mitigation"} <= set(e.sections)]
    assert len(with_all_four) >= 90
