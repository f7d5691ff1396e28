"""The learning loop: examine patterns that are new or recurring without an entry, and draft entries.

Three triggers, one code path: `tick()` (the worker calls it every ~30 s) starts a run when one was queued
(`POST /trigger-learning`) or when `interval` has passed since the last run and new errors arrived; `run()`
starts one at once (`errlearn learn`). Runs never overlap (see `agent.guide.runs`). Time comes from an
injectable clock, so the interval is tested without waiting.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable

from sqlalchemy import Engine

from agent.guide import repo, runs
from agent.guide.models import LearningRunReport, PatternOutcome
from agent.guide.policy import Drafter
from agent.llm.providers import ModelUnavailable
from agent.store import repo as store_repo

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
Progress = Callable[[int, int, str], None]
"""Called after each pattern with (done, total, pattern id)."""
WATERMARK = "guide_learned_until"
"""Meta key: patterns last seen before this time were all examined by a complete run."""
WATERMARK_MARGIN = dt.timedelta(seconds=60)
"""Set the watermark this far before the run started: an event stamped just before the start may be committed
(by the writer, or by another host with a slightly different clock) after the run listed its candidates."""


class LearningLoop:
    def __init__(
        self,
        engine: Engine,
        drafter: Drafter,
        *,
        clock: Clock,
        interval: dt.timedelta = dt.timedelta(minutes=5),
        stale_after: dt.timedelta = dt.timedelta(hours=1),
        max_model_calls: int = 20,
        lease: dt.timedelta = dt.timedelta(seconds=60),
    ) -> None:
        """Set up the loop.

        Args:
            engine: the database.
            drafter: applies the policy to one pattern.
            clock: the current time (tests inject a fake one).
            interval: the periodic trigger's minimum spacing between runs.
            stale_after: a run still `running` after this long is taken for dead and no longer blocks others.
                A run stops taking new patterns at half of it, so a live run is never taken for dead.
            max_model_calls: model calls per run; the remaining candidates wait for the next run.
            lease: a running run renews its lease (a heartbeat) every quarter of this; a run whose holder
                stopped renewing it (SIGKILL, a hung process) is taken for dead after this long.
        """
        self.engine = engine
        self.drafter = drafter
        self.clock = clock
        self.interval = interval
        self.stale_after = stale_after
        self.max_model_calls = max_model_calls
        self.lease = lease

    # -- triggers ----------------------------------------------------------------------------------------
    def due(self, now: dt.datetime) -> bool:
        """Periodic trigger: `interval` since the last run started, and errors arrived since then."""
        last = runs.last_started(self.engine)
        if last is not None and now - last < self.interval:
            return False
        return runs.errors_since(self.engine, last)

    def tick(self, *, queued_only: bool = False) -> LearningRunReport | None:
        """Run a queued learning run, or (unless `queued_only`) a periodic one when due. None when nothing ran."""
        now = self.clock()
        queued = runs.oldest_queued(self.engine)
        if queued is not None:
            started = runs.start(
                self.engine,
                now,
                stale_before=now - self.stale_after,
                lease_expired_before=now - self.lease,
                run_id=queued,
            )
        elif not queued_only and self.due(now):
            started = runs.start(
                self.engine,
                now,
                stale_before=now - self.stale_after,
                lease_expired_before=now - self.lease,
                trigger="periodic",
            )
        else:
            return None
        if started is None:  # another process is running one; the queued row waits for it
            return None
        return self._execute(started, None)

    def run(self, trigger: str = "manual", progress: Progress | None = None) -> LearningRunReport:
        """Run now. Status `busy` (and nothing done) when another run is in progress."""
        now = self.clock()
        started = runs.start(
            self.engine,
            now,
            stale_before=now - self.stale_after,
            lease_expired_before=now - self.lease,
            trigger=trigger,
        )
        if started is None:
            with self.engine.connect() as conn:
                other = runs.running(conn)
            message = f"learning run #{other.id} is in progress" if other is not None else "another run started"
            return LearningRunReport(run_id=None, trigger=trigger, status="busy", errors=[message])
        return self._execute(started, progress)

    # -- the run -------------------------------------------------------------------------------------------
    def _heartbeat(self, run_id: int) -> threading.Event:
        """Renew the run's lease from a thread (a model call can take minutes) until the returned event is set."""
        stop = threading.Event()
        every = max(0.05, self.lease.total_seconds() / 4)

        def beat() -> None:
            while not stop.wait(every):
                try:
                    if not runs.heartbeat(self.engine, run_id, self.clock()):
                        return
                except Exception:
                    log.exception("learning run %s: renewing the lease failed", run_id)

        threading.Thread(target=beat, name=f"errlearn-learning-lease-{run_id}", daemon=True).start()
        return stop

    def _watermark(self) -> dt.datetime | None:
        with self.engine.connect() as conn:
            value = store_repo.get_meta(conn, WATERMARK)
        return dt.datetime.fromisoformat(value) if value else None

    def _execute(self, started: runs.StartedRun, progress: Progress | None) -> LearningRunReport:
        report = LearningRunReport(
            run_id=started.id, trigger=started.trigger, status="running", started_at=started.started_at
        )
        outcomes: Counter[str] = Counter()
        deadline = time.monotonic() + self.stale_after.total_seconds() / 2
        calls = 0
        complete = True
        beating = self._heartbeat(started.id)
        try:
            self.drafter.prepare()
            with self.engine.connect() as conn:
                candidates = repo.uncovered_patterns(conn, self._watermark())
            total = len(candidates)
            for done, pattern_id in enumerate(candidates):
                if calls >= self.max_model_calls or time.monotonic() > deadline:
                    report.deferred = total - done
                    complete = False
                    break
                try:
                    learned = self.drafter.learn(pattern_id)
                except ModelUnavailable:
                    raise  # every other pattern would fail the same way
                except Exception as exc:
                    log.exception("learning failed for pattern %s", pattern_id)
                    report.errors.append(f"{pattern_id}: {type(exc).__name__}: {exc}"[:500])
                    complete = False
                    continue
                finally:
                    report.patterns_examined += 1
                calls += learned.model_calls
                outcomes[learned.outcome.value] += 1
                if learned.outcome is PatternOutcome.drafted and learned.entry_id:
                    report.drafted_ids.append(learned.entry_id)
                report.drafts_created = len(report.drafted_ids)
                runs.progress(self.engine, started.id, examined=report.patterns_examined, drafts=report.drafts_created)
                if progress is not None:
                    progress(done + 1, total, pattern_id)
            if complete:
                with self.engine.begin() as conn:
                    store_repo.set_meta(conn, WATERMARK, (started.started_at - WATERMARK_MARGIN).isoformat())
            report.status = "finished"
        except Exception as exc:
            log.exception("learning run %s failed", started.id)
            report.status = "failed"
            report.errors.append(f"{type(exc).__name__}: {exc}"[:1000])
        finally:
            beating.set()
            report.outcomes = dict(outcomes)
            report.finished_at = self.clock()
            runs.finish(
                self.engine,
                started.id,
                report.finished_at,
                status=report.status,
                examined=report.patterns_examined,
                drafts=report.drafts_created,
                errors=report.errors,
            )
        log.info(
            "learning run %s %s: %d patterns, %d drafts, outcomes %s",
            started.id,
            report.status,
            report.patterns_examined,
            report.drafts_created,
            report.outcomes,
        )
        return report
