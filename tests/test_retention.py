"""Retention: expired events go in batches; samples, references, patterns and counters stay."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import Engine, event, insert, select
from typer.testing import CliRunner

from agent.ingest.normalize import EventCreate
from agent.service import Core
from agent.settings import Settings
from agent.store import repo
from agent.store.retention import Retention
from agent.store.retention_refs import (
    current_diagnosis_evidence,
    default_references,
    guide_evidence,
    open_proposal_evidence,
)
from agent.store.sink import JsonlSink
from agent.store.sink_rotation import SinkRotation
from agent.store.tables import DiagnosisRow, EventRow, PatternRow

EVENTS = EventRow.__table__
PATTERNS = PatternRow.__table__
T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
DAY = dt.timedelta(days=1)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def core(settings: Settings, clock: Clock) -> Iterator[Core]:
    c = Core(settings, clock=clock).open()
    yield c
    c.close()


def ingest(core: Core, clock: Clock, n: int, *, error_type: str = "KeyError", service: str = "api") -> list[str]:
    """`n` events of one pattern, one second apart (received times come from the injected clock)."""
    ids = []
    for _ in range(n):
        body = EventCreate(service=service, error_type=error_type, error_message="missing key", severity="high")
        ids.append(core.ingest_sync([body])[0].event_id)
        clock.now += dt.timedelta(seconds=1)
    return ids


def ingest_bulk(core: Core, clock: Clock, n: int, *, error_type: str, per_call: int = 400) -> list[str]:
    """`n` events in calls of `per_call`: events of one call share their received time (ties broken by id)."""
    ids: list[str] = []
    while len(ids) < n:
        k = min(per_call, n - len(ids))
        body = EventCreate(service="bulk", error_type=error_type, error_message="boom", severity="low")
        ids += [s.event_id for s in core.ingest_sync([body] * k)]
        clock.now += dt.timedelta(seconds=1)
    return ids


def event_ids(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(EVENTS.c.id)).scalars())


def retention(core: Core, clock: Clock, **over: Any) -> Retention:
    options: dict[str, Any] = {"days": 30, "keep_samples": 3, "batch": 500, "referenced": default_references()}
    options.update(over)
    return Retention(core.engine, clock=clock, **options)


def add_diagnosis(engine: Engine, pattern_id: str, evidence: list[str], *, current: bool) -> int:
    row = {
        "pattern_id": pattern_id,
        "current": current,
        "status": "ok",
        "summary": "s",
        "root_cause": "r",
        "confidence": 0.9,
        "solution_steps": [],
        "prevention_tips": [],
        "evidence": evidence,
        "removed_citations": [],
        "proposed_actions": [],
        "model": "test",
        "prompt_name": "diagnose",
        "prompt_version": 1,
        "prompt_sha256": "0" * 64,
        "created_at": T0,
    }
    with engine.begin() as conn:
        return int(conn.execute(insert(DiagnosisRow).values(**row)).inserted_primary_key[0])  # type: ignore[index]


def add_guide_entry(engine: Engine, number: int, status: str, evidence: list[str], proposal: Any = None) -> None:
    from agent.guide.tables import GuideEntryRow

    row = {
        "id": f"ERROR-{number:03d}",
        "number": number,
        "status": status,
        "title": "t",
        "symptoms": [],
        "solution_steps": [],
        "prevention_tips": [],
        "commands": [],
        "author_kind": "person",
        "author": "reviewer",
        "evidence": evidence,
        "proposal": proposal,
        "created_at": T0,
        "updated_at": T0,
    }
    with engine.begin() as conn:
        conn.execute(insert(GuideEntryRow).values(**row))


def add_proposal(engine: Engine, status: str, diagnosis_id: int, target: str) -> None:
    from agent.recovery.tables import RecoveryProposalRow

    row = {
        "action_id": "restart",
        "params": {},
        "argv": ["true"],
        "target": target,
        "source": "diagnosis",
        "diagnosis_id": diagnosis_id,
        "status": status,
        "created_at": T0,
        "updated_at": T0,
    }
    with engine.begin() as conn:
        conn.execute(insert(RecoveryProposalRow).values(**row))


def pattern_of(engine: Engine, event_id: str) -> dict[str, Any]:
    """The pattern of an event as readers see it (counts include what is not folded yet)."""
    with engine.connect() as conn:
        pid = conn.execute(select(EVENTS.c.pattern_id).where(EVENTS.c.id == event_id)).scalar_one()
        pattern = repo.get_pattern(conn, pid)
        assert pattern is not None
        return pattern.model_dump()


# -- what goes and what stays ------------------------------------------------------------------------------------
def test_expired_events_go_newest_samples_stay_and_the_sample_is_repointed(core: Core, clock: Clock) -> None:
    old = ingest(core, clock, 8, error_type="KeyError")  # one pattern, all old
    mixed_old = ingest(core, clock, 5, error_type="ValueError")  # all expired, none needed as a sample
    clock.now += 40 * DAY
    mixed_new = ingest(core, clock, 4, error_type="ValueError")  # enough recent events: no old one is needed
    fresh = ingest(core, clock, 2, error_type="OSError")
    before = pattern_of(core.engine, old[0])
    assert before["sample_event_id"] == old[0]  # the writer points a pattern at its first event

    report = retention(core, clock).run()

    left = event_ids(core.engine)
    assert left == set(old[-3:]) | set(mixed_new) | set(fresh)
    assert not left & set(mixed_old)
    assert report.deleted == 5 + 5 and report.kept_samples == 3
    after = pattern_of(core.engine, old[-1])
    assert after["sample_event_id"] == old[-1]  # the newest remaining event
    assert (after["count"], after["first_seen"], after["last_seen"]) == (
        before["count"],
        before["first_seen"],
        before["last_seen"],
    )
    assert pattern_of(core.engine, mixed_new[0])["sample_event_id"] == mixed_new[-1]
    assert report.repointed == 2
    assert retention(core, clock).run().deleted == 0  # idempotent


def test_referenced_events_stay_and_unreferenced_ones_go(core: Core, clock: Clock) -> None:
    ids = ingest(core, clock, 12)
    pid = pattern_of(core.engine, ids[0])["id"]
    engine = core.engine
    add_diagnosis(engine, pid, [ids[0], pid, "kb:runbook"], current=True)
    old_diag = add_diagnosis(engine, pid, [ids[1]], current=False)  # history: does not protect
    open_diag = add_diagnosis(engine, pid, [ids[2]], current=False)
    add_proposal(engine, "proposed", open_diag, "a")  # open: protects its diagnosis's evidence
    add_proposal(engine, "denied", old_diag, "b")
    add_guide_entry(engine, 1, "approved", [ids[3]], proposal={"evidence": [ids[4]], "pattern_id": pid})
    add_guide_entry(engine, 2, "draft", [ids[5]])
    add_guide_entry(engine, 3, "rejected", [ids[6]])
    add_guide_entry(engine, 4, "superseded", [ids[7]], proposal=None)
    clock.now += 40 * DAY

    plan = retention(core, clock, keep_samples=1, referenced=[*default_references(), lambda _c: {ids[8]}]).plan()
    report = retention(core, clock, keep_samples=1, referenced=[*default_references(), lambda _c: {ids[8]}]).run()

    kept = {ids[0], ids[2], ids[3], ids[4], ids[5], ids[8], ids[11]}
    assert event_ids(engine) == kept
    assert report.kept_referenced == plan.kept_referenced == 6 and report.kept_samples == 1
    assert report.deleted == plan.events == 12 - len(kept)


@pytest.mark.parametrize(
    "provider", [current_diagnosis_evidence, guide_evidence(), open_proposal_evidence()], ids=["diag", "guide", "rec"]
)
def test_providers_tolerate_odd_evidence(core: Core, provider: Any) -> None:
    """Empty lists, JSON null and objects give no ids instead of failing the whole run (on both databases)."""
    ids = ingest(core, Clock(T0), 1)
    pid = pattern_of(core.engine, ids[0])["id"]
    d1 = add_diagnosis(core.engine, pid, [], current=True)
    add_diagnosis(core.engine, pid, {"not": "a list"}, current=True)  # type: ignore[arg-type]
    add_guide_entry(core.engine, 1, "approved", [], proposal={"evidence": None})
    add_guide_entry(core.engine, 2, "approved", [ids[0]], proposal={"no_evidence": 1})
    add_proposal(core.engine, "approved", d1, "a")
    with core.engine.connect() as conn:
        found = set(conn.execute(provider(conn)).scalars()) - {None}  # Retention ignores NULLs
    assert found <= {ids[0], "a list"}  # SQLite's json_each walks an object's values: it can only protect more


def test_a_reference_made_during_the_run_is_honoured_by_the_delete(
    core: Core, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = ingest(core, clock, 6)
    pid = pattern_of(core.engine, ids[0])["id"]
    clock.now += 40 * DAY
    r = retention(core, clock, keep_samples=1)
    real_delete = r._delete

    def cite_then_delete(page: Any, cutoff: Any, queries: Any) -> Any:
        add_diagnosis(core.engine, pid, [ids[0]], current=True)  # committed after the candidates were chosen
        return real_delete(page, cutoff, queries)

    monkeypatch.setattr(r, "_delete", cite_then_delete)
    report = r.run()
    assert ids[0] in event_ids(core.engine)
    assert report.referenced_at_delete == 1 and report.deleted == 4


def test_a_failing_provider_deletes_nothing(core: Core, clock: Clock) -> None:
    ingest(core, clock, 5)
    clock.now += 40 * DAY

    def broken(_conn: Any) -> set[str]:
        raise RuntimeError("guide tables unreadable")

    with pytest.raises(RuntimeError):
        retention(core, clock, keep_samples=1, referenced=[broken]).run()
    assert len(event_ids(core.engine)) == 5


# -- batches, dry run, settings ------------------------------------------------------------------------------------
def test_deletes_in_batches_of_short_transactions(core: Core, clock: Clock) -> None:
    ingest_bulk(core, clock, 1203, error_type="TimeoutError")  # 1200 deletable + 3 samples, with tied times
    clock.now += 40 * DAY
    commits: list[int] = []

    def count_commit(_conn: Any) -> None:
        commits.append(1)

    sizes: list[int] = []
    r = retention(core, clock, on_deleted=lambda gone: sizes.append(len(gone)))
    event.listen(core.engine, "commit", count_commit)
    try:
        report = r.run()
    finally:
        event.remove(core.engine, "commit", count_commit)
    assert report.deleted == 1200 and report.batches == 3 and sizes == [500, 500, 200]
    assert len(commits) == 3  # reads commit nothing: only the three DELETE transactions write
    assert len(event_ids(core.engine)) == 3


def test_a_time_budget_stops_between_batches_and_the_next_run_carries_on(core: Core, clock: Clock) -> None:
    ingest_bulk(core, clock, 901, error_type="TimeoutError", per_call=300)
    clock.now += 40 * DAY
    first = retention(core, clock, keep_samples=1, batch=200).run(max_seconds=0)
    assert (first.batches, first.deleted, first.complete) == (1, 200, False)  # one batch, however short the budget
    rest = retention(core, clock, keep_samples=1, batch=200).run(max_seconds=60)
    assert (rest.deleted, rest.complete) == (700, True) and len(event_ids(core.engine)) == 1


def test_ingest_goes_on_while_pruning(core: Core, clock: Clock) -> None:
    """Short write transactions: the event writer commits between the batches without errors."""
    ingest_bulk(core, clock, 3000, error_type="TimeoutError", per_call=500)
    clock.now += 40 * DAY
    acknowledged: list[str] = []
    errors: list[BaseException] = []

    def ingest_meanwhile() -> None:
        body = EventCreate(service="live", error_type="OSError", error_message="disk full", severity="high")
        try:
            for _ in range(60):
                acknowledged.extend(s.event_id for s in core.ingest_sync([body, body]))
        except BaseException as exc:  # reported below
            errors.append(exc)

    thread = threading.Thread(target=ingest_meanwhile)
    thread.start()
    report = retention(core, clock, keep_samples=1, batch=100).run()
    thread.join(60)
    assert not errors and len(acknowledged) == 120
    assert report.deleted == 2999 and report.batches == 30
    assert set(acknowledged) <= event_ids(core.engine)


def test_dry_run_deletes_nothing_and_reports_what_would_go(core: Core, clock: Clock) -> None:
    api = ingest(core, clock, 6, service="api")
    clock.now += 2 * DAY
    worker = ingest(core, clock, 4, service="worker", error_type="OSError")
    clock.now += 40 * DAY
    before = event_ids(core.engine)

    plan = retention(core, clock, keep_samples=2, batch=3).plan()

    assert event_ids(core.engine) == before and len(before) == 10
    by_service = {s.service: s for s in plan.services}
    assert (by_service["api"].events, by_service["worker"].events) == (4, 2)
    with core.engine.connect() as conn:
        rx = dict(conn.execute(select(EVENTS.c.id, EVENTS.c.received_at)).all())
    assert by_service["api"].oldest == rx[api[0]] and by_service["api"].newest == rx[api[3]]
    assert by_service["worker"].oldest == rx[worker[0]] and by_service["worker"].newest == rx[worker[1]]
    assert plan.kept_samples == 4 and plan.samples_to_repoint == 2 and plan.events == 6
    report = retention(core, clock, keep_samples=2, batch=3).run()
    assert report.deleted == plan.events and report.services == plan.services


def test_zero_days_keeps_events_forever(core: Core, clock: Clock) -> None:
    ingest(core, clock, 4)
    clock.now += 4000 * DAY
    assert retention(core, clock, days=0, keep_samples=1).run().deleted == 0
    assert len(event_ids(core.engine)) == 4
    with pytest.raises(ValueError):
        retention(core, clock, keep_samples=0)


def test_from_settings_uses_the_builtin_references(core: Core, clock: Clock, settings: Settings) -> None:
    ids = ingest(core, clock, 3)
    add_diagnosis(core.engine, pattern_of(core.engine, ids[0])["id"], [ids[0]], current=True)
    clock.now += 40 * DAY
    r = Retention.from_settings(settings, core.engine, clock=clock)
    assert r.days == 30 and r.keep_samples == 10 and r.sinks is not None
    r.keep_samples = 1
    r.run()
    assert event_ids(core.engine) == {ids[0], ids[2]}


# -- /stats stays the same ------------------------------------------------------------------------------------------
def test_stats_and_pattern_counts_unchanged(client: Any) -> None:
    body = {"service": "api", "error_type": "KeyError", "error_message": "missing key", "severity": "high"}
    for _ in range(6):
        assert client.post("/errors", json=body).status_code == 202
    pid = client.post("/errors", json=body).json()["pattern_id"]
    stats_before = client.get("/stats").json()
    pattern_before = client.get(f"/patterns/{pid}").json()
    engine = client.app.state.core.engine
    later = Clock(dt.datetime.now(dt.UTC) + 40 * DAY)

    report = Retention(engine, clock=later, days=30, keep_samples=2, batch=500, referenced=default_references()).run()

    assert report.deleted == 5
    assert client.get("/stats").json() == stats_before
    pattern_after = client.get(f"/patterns/{pid}").json()
    assert pattern_after["count"] == pattern_before["count"] == 7
    assert len(pattern_after["samples"]) == 2
    assert client.get(f"/events/{pattern_after['samples'][0]['id']}").status_code == 200


# -- the CLI -----------------------------------------------------------------------------------------------------------
def test_prune_command_dry_run_then_real(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    import typer

    from agent.cli.prune import prune_command

    monkeypatch.setenv("ERRLEARN_DATABASE_URL", settings.resolved_database_url)
    clock = Clock(dt.datetime.now(dt.UTC) - 45 * DAY)
    core = Core(settings, clock=clock).open()
    try:
        ingest(core, clock, 14, service="billing")
    finally:
        core.close()
    app = typer.Typer()
    app.command("prune")(prune_command)
    app.command("noop")(lambda: None)  # a second command, so "prune" is a sub-command as in the real CLI
    runner = CliRunner()

    dry = runner.invoke(app, ["prune", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "billing" in dry.output and "4" in dry.output and "dry run" in dry.output.lower()
    engine = Core(settings).engine
    assert len(event_ids(engine)) == 14

    as_json = runner.invoke(app, ["prune", "--dry-run", "--json"])
    assert as_json.exit_code == 0 and '"events": 4' in as_json.output

    real = runner.invoke(app, ["prune", "--keep-samples", "3"])
    assert real.exit_code == 0, real.output
    assert len(event_ids(engine)) == 3
    engine.dispose()


# -- JSONL sinks ------------------------------------------------------------------------------------------------------
def _file(tmp_path: Path, name: str, size: int, age_days: float) -> Path:
    path = tmp_path / name
    path.write_bytes(b"x" * size)
    stamp = (T0 - dt.timedelta(days=age_days)).timestamp()
    os.utime(path, (stamp, stamp))
    return path


def _actions(rotation: SinkRotation) -> dict[str, str]:
    return {a.path.name: a.kind for a in rotation.plan().actions}


def test_sink_plan_rules(tmp_path: Path) -> None:
    _file(tmp_path, "api-errors.jsonl", 50, 0)  # live, small, recent: left alone
    _file(tmp_path, "big-errors.jsonl", 5000, 0)  # live over max_bytes: copied into an archive, truncated
    _file(tmp_path, "idle-errors.jsonl", 10, 40)  # live, untouched for 40 days: all of it expired
    _file(tmp_path, "api-errors.jsonl.1", 900, 1)  # rotated: compressed
    _file(tmp_path, "api-errors.jsonl.2", 900, 31)  # rotated but expired: deleted, not compressed first
    _file(tmp_path, "api-errors.jsonl.20260227T000000Z.gz", 100, 2)
    _file(tmp_path, "api-errors.jsonl.20260226T000000Z.gz", 100, 3)  # third newest archive: beyond 2 backups
    _file(tmp_path, "api-errors.jsonl.20260101T000000Z.gz", 100, 59)  # expired
    _file(tmp_path, "notes.txt", 10, 90)  # not a sink file
    rotation = SinkRotation(tmp_path, clock=Clock(T0), max_bytes=1000, backups=2, max_age_days=30)

    assert _actions(rotation) == {
        "big-errors.jsonl": "rotate",
        "idle-errors.jsonl": "truncate",
        "api-errors.jsonl.1": "compress",
        "api-errors.jsonl.2": "delete",
        "api-errors.jsonl.20260226T000000Z.gz": "delete",
        "api-errors.jsonl.20260101T000000Z.gz": "delete",
    }
    plan = rotation.plan()
    assert plan.total_bytes == 50 + 5000 + 10 + 900 + 900 + 300
    assert plan.bytes_to_free == 10 + 900 + 100 + 100 and plan.bytes_to_compress == 5900

    no_backups = SinkRotation(tmp_path, clock=Clock(T0), max_bytes=1000, backups=0, max_age_days=30)
    acts = _actions(no_backups)
    assert acts["big-errors.jsonl"] == "truncate" and acts["api-errors.jsonl.1"] == "delete"


def test_sink_dry_run_changes_nothing_and_run_does_what_it_said(tmp_path: Path) -> None:
    for name, size, age in [("a-errors.jsonl", 5000, 0), ("a-errors.jsonl.1", 900, 1), ("a-errors.jsonl.3", 9, 45)]:
        _file(tmp_path, name, size, age)
    rotation = SinkRotation(tmp_path, clock=Clock(T0), max_bytes=1000, backups=5, max_age_days=30)
    listing = {p.name: p.stat().st_size for p in tmp_path.iterdir()}
    plan = rotation.plan()
    assert {p.name: p.stat().st_size for p in tmp_path.iterdir()} == listing

    done = rotation.run()
    assert [(a.kind, a.path.name) for a in done.actions] == [(a.kind, a.path.name) for a in plan.actions]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "a-errors.jsonl",
        "a-errors.jsonl.20260228T120000Z.gz",  # named by its content's age (the rotated file's mtime)
        "a-errors.jsonl.20260301T120000Z.gz",
    ]
    assert (tmp_path / "a-errors.jsonl").stat().st_size == 0
    assert gzip.decompress((tmp_path / names[1]).read_bytes()) == b"x" * 900
    assert gzip.decompress((tmp_path / names[2]).read_bytes()) == b"x" * 5000
    assert rotation.run().actions == ()  # nothing left to do


def test_sink_rotation_alongside_a_live_sink_loses_no_line(tmp_path: Path) -> None:
    """The sink keeps its files open: archives plus the live file hold every line, before and after pruning."""
    directory = tmp_path / "errors"
    sink = JsonlSink(directory, max_bytes=2000, backups=3)
    clock = Clock(dt.datetime.now(dt.UTC))
    rotation = SinkRotation(directory, clock=clock, max_bytes=2000, backups=50, max_age_days=30)
    written = 0
    try:
        for round_ in range(4):
            for i in range(60):
                sink.append([{"service": "api", "n": round_ * 1000 + i, "pad": "y" * 40}])
                written += 1
            assert rotation.run().errors == ()

        def lines() -> list[int]:
            out = []
            for path in sorted(directory.iterdir()):
                data = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
                out += [orjson.loads(line)["n"] for line in data.splitlines() if line]
            return sorted(out)

        assert len(lines()) == written == len(set(lines()))
        assert not [p for p in directory.iterdir() if p.name.endswith((".1", ".2", ".3", ".pending"))]

        # 40 days later every file has expired: archives go, the live file is emptied, and the sink writes on.
        clock.now += 40 * DAY
        old = (clock.now - 31 * DAY).timestamp()
        for path in directory.iterdir():
            os.utime(path, (old, old))
        rotation.run()
        assert [p.name for p in directory.iterdir()] == ["api-errors.jsonl"]
        sink.append([{"service": "api", "n": -1}])
        assert lines() == [-1]
        assert (directory / "api-errors.jsonl").read_bytes().startswith(b"{")  # appended at 0: no hole of NULs
    finally:
        sink.close()


def test_retention_run_rotates_the_sinks_and_the_plan_reports_them(core: Core, clock: Clock, tmp_path: Path) -> None:
    directory = tmp_path / "sinks"
    directory.mkdir()
    _file(directory, "api-errors.jsonl.1", 900, 0)
    _file(directory, "api-errors.jsonl.2", 900, 45)
    sinks = SinkRotation(directory, clock=clock, max_bytes=1000, backups=5, max_age_days=30)
    r = retention(core, clock, sinks=sinks)
    plan = r.plan()
    assert plan.sinks is not None and {a.kind for a in plan.sinks.actions} == {"compress", "delete"}
    assert plan.as_dict()["sinks"]["bytes_to_free"] == 900
    report = r.run()
    assert report.sinks is not None and len(report.sinks.actions) == 2
    assert [p.suffix for p in directory.iterdir()] == [".gz"]
