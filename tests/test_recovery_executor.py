"""Real processes: SubprocessRunner, and an allow-listed script run end to end with its audit row."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agent.recovery.executor import SubprocessRunner, clip
from agent.recovery.models import AuditKind, ProposalStatus
from agent.recovery.service import Recovery
from tests.test_recovery_support import SERVICES, FakeClock, config, migrated

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the test scripts are POSIX shell scripts")


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); it is dead for our purposes
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_argv_reaches_the_program_verbatim_without_a_shell(tmp_path: Path) -> None:
    echo = script(tmp_path, "echo.sh", 'for a in "$@"; do printf "[%s]\\n" "$a"; done\n')
    out = SubprocessRunner().run([str(echo), "a;b $(id) `id` | x", "*"], timeout_s=10, cwd=None, env={})
    assert out.ok
    assert out.stdout == "[a;b $(id) `id` | x]\n[*]\n"


def test_only_the_given_environment_reaches_the_program(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ERRLEARN_ADMIN_KEY", "secret-admin-key-0123456789")
    env_sh = script(tmp_path, "env.sh", "/usr/bin/env\n")
    out = SubprocessRunner().run([str(env_sh)], timeout_s=10, cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "LANG": "C"})
    names = {line.split("=", 1)[0] for line in out.stdout.splitlines()}
    assert "ERRLEARN_ADMIN_KEY" not in names and "secret-admin-key" not in out.stdout
    assert names <= {"PATH", "LANG", "PWD", "SHLVL", "_", "OLDPWD"}  # the shell may add its own


def test_a_program_that_cannot_start_is_an_error_not_an_exception(tmp_path: Path) -> None:
    out = SubprocessRunner().run([str(tmp_path / "missing")], timeout_s=5, cwd=None, env={})
    assert not out.ok and out.exit_code is None and "FileNotFoundError" in (out.error or "")
    out = SubprocessRunner().run(["/bin/true"], timeout_s=5, cwd=tmp_path / "nope", env={})
    assert not out.ok and out.error


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    sleeper = script(tmp_path, "sleeper.sh", f"trap '' TERM\nsleep 60 &\necho $! > {pidfile}\nsleep 60\n")
    started = time.monotonic()
    out = SubprocessRunner().run([str(sleeper)], timeout_s=1.0, cwd=None, env={"PATH": "/usr/bin:/bin"})
    elapsed = time.monotonic() - started
    assert out.timed_out and not out.ok
    assert elapsed < 10, f"took {elapsed:.1f} s"
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child), "the grandchild outlived the timeout"


def test_output_is_bounded_head_and_tail(tmp_path: Path) -> None:
    chatty = script(tmp_path, "chatty.sh", "echo FIRST\nhead -c 300000 /dev/zero | tr '\\0' x\necho\necho LAST\n")
    out = SubprocessRunner(max_capture_bytes=4096).run(
        [str(chatty)], timeout_s=10, cwd=None, env={"PATH": "/usr/bin:/bin"}
    )
    assert out.truncated and out.stdout.startswith("FIRST") and out.stdout.rstrip().endswith("LAST")
    assert len(out.stdout) < 5000 and "bytes cut by errlearn" in out.stdout
    assert clip(b"abc", 10) == ("abc", False)


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    yield from migrated(database_url)


def recovery_for(engine: Engine, argv0: Path, **action: object) -> Recovery:
    cfg = config(
        {
            "services": SERVICES,
            "actions": [
                {
                    "id": "restart_service",
                    "description": "restart",
                    "argv": [str(argv0), "{service}"],
                    "params": {"service": {"allowed_from": "services"}},
                    "mode": "approve",
                    "env": ["PATH", "RECOVERY_TEST_VAR"],
                    **action,
                }
            ],
        }
    )
    return Recovery(engine, cfg, clock=FakeClock(), runner=SubprocessRunner(), dry_run=False)


def approve(recovery: Recovery, service: str) -> int:
    result = recovery.propose("restart_service", {"service": service}, source="manual", actor="test")
    assert result.proposal_id is not None
    assert recovery.approve(result.proposal_id, "admin:ops").status == "approved"
    return result.proposal_id


def test_an_allow_listed_script_runs_for_real_and_is_audited(
    engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECOVERY_TEST_VAR", "passed-through")
    monkeypatch.setenv("NOT_ALLOWED_VAR", "leaked")
    restart = script(
        tmp_path,
        "restart.sh",
        'echo "restarting $1 (${RECOVERY_TEST_VAR}) ${NOT_ALLOWED_VAR}"\n'
        'echo "token=sk-live-abcdefghijklmnop1234" \necho warn >&2\n',
    )
    recovery = recovery_for(engine, restart, working_dir=str(tmp_path))
    pid = approve(recovery, "worker")
    recovery.tick()
    (row,) = [e for e in recovery.audit() if e.kind is AuditKind.executed]
    assert row.argv == [str(restart), "worker"] and row.exit_code == 0 and row.actor == "admin:ops"
    assert row.output is not None
    assert "restarting worker (passed-through)" in row.output and "leaked" not in row.output
    assert "--- stderr ---\nwarn" in row.output
    assert "sk-live-abcdefghijklmnop1234" not in row.output  # output is scrubbed before it is stored
    p = recovery.proposal(pid)
    assert p is not None and p.status is ProposalStatus.succeeded and p.run_status == "succeeded"


def test_a_hanging_script_is_killed_at_the_timeout_and_recorded(engine: Engine, tmp_path: Path) -> None:
    hang = script(tmp_path, "hang.sh", "echo started\nsleep 60\n")
    recovery = recovery_for(engine, hang, timeout_seconds=1)
    pid = approve(recovery, "api")
    started = time.monotonic()
    recovery.tick()
    assert time.monotonic() - started < 10
    (row,) = [e for e in recovery.audit() if e.kind is AuditKind.failed]
    assert "timed out after 1 s" in row.reason and row.output is not None and "started" in row.output
    p = recovery.proposal(pid)
    assert p is not None and p.status is ProposalStatus.failed and p.run_status == "timeout"


def test_non_zero_exit_is_a_failure_with_its_code(engine: Engine, tmp_path: Path) -> None:
    bad = script(tmp_path, "bad.sh", "echo nope >&2\nexit 3\n")
    recovery = recovery_for(engine, bad)
    approve(recovery, "db")
    recovery.tick()
    (row,) = [e for e in recovery.audit() if e.kind is AuditKind.failed]
    assert row.exit_code == 3 and row.reason == "exit code 3" and "nope" in (row.output or "")


def test_dry_run_records_the_argv_and_runs_nothing(engine: Engine, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    touch = script(tmp_path, "touch.sh", f"touch {marker}\n")
    recovery = recovery_for(engine, touch)
    recovery.dry_run = True
    pid = approve(recovery, "api")
    recovery.tick()
    assert not marker.exists()
    (row,) = [e for e in recovery.audit() if e.kind is AuditKind.dry_run]
    assert row.argv == [str(touch), "api"]
    p = recovery.proposal(pid)
    assert p is not None and p.status is ProposalStatus.dry_run
