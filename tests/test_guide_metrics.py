"""The prevention metric: occurrences of an approved entry's patterns before and after approval."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from agent.guide.metrics import prevention_metrics
from tests.test_guide_support import T0, GuideEnv, guide_env

__all__ = ["guide_env"]


def test_rates_before_and_after_approval(guide_env: GuideEnv) -> None:
    env = guide_env
    # 12 refusals over the 4 days before approval (3 a day), and a disk error that stays a draft.
    for day in range(4):
        env.ingest("api", "ConnectionRefusedError", f"connection to db-{day}:5432 refused", 3)
        env.clock.advance(days=1)
    env.ingest("worker", "OSError", "[Errno 28] No space left on device", 5)
    report = env.guide.learning.run("manual")
    assert report.drafts_created == 2
    refused = env.pattern_id("ConnectionRefusedError")
    ident = next(e.id for e in env.guide.entries() if e.pattern_ids == [refused])
    approved_at = env.clock()
    assert approved_at == T0 + dt.timedelta(days=4)
    env.guide.approve(ident, by="alice")

    # After approval: 2 more over 10 days (0.2 a day); one also in another service, linked to the entry.
    env.clock.advance(days=3)
    env.ingest("api", "ConnectionRefusedError", "connection to db-9:5432 refused")
    env.clock.advance(days=3)
    env.ingest("billing", "ConnectionRefusedError", "connection to db-9:5432 refused")
    env.guide.learning.run("manual")  # links the billing pattern (same error type and template)
    env.clock.advance(days=4)

    [metric] = prevention_metrics(env.engine, env.clock())
    assert metric["entry_id"] == ident and len(metric["pattern_ids"]) == 2
    assert metric["approved_at"] == approved_at.isoformat()
    assert metric["before"] == {"events": 12, "days": 4.0, "per_day": 3.0}
    assert metric["after"] == {"events": 2, "days": 10.0, "per_day": 0.2}
    assert metric["change"] == round((0.2 - 3.0) / 3.0, 4)

    # Events after `now` are not counted; a window shorter than a day counts as one day.
    [early] = prevention_metrics(env.engine, approved_at + dt.timedelta(hours=6))
    assert early["after"] == {"events": 0, "days": 0.25, "per_day": 0.0}
    assert prevention_metrics(env.engine, env.clock(), ["ERROR-999"]) == []


def test_entries_without_patterns_or_events_report_zero(guide_env: GuideEnv, tmp_path: Path) -> None:
    source = tmp_path / "g.md"
    source.write_text("## ERROR-007: Hand written\n\n**Solution:** restart\n")
    guide_env.guide.import_markdown(source, by="dana")
    guide_env.clock.advance(days=2)
    [metric] = guide_env.guide.metrics()
    assert metric["entry_id"] == "ERROR-007" and metric["pattern_ids"] == []
    assert metric["before"]["events"] == 0 and metric["after"] == {"events": 0, "days": 2.0, "per_day": 0.0}
    assert metric["change"] is None
