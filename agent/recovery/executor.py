"""Running an argv: the only module of `agent/recovery` that starts processes.

No shell is ever involved (`shell=False`, argv list). The child gets no stdin, only the
environment it is handed, its own process group (so a timeout kills the whole tree, not just
the parent while a grandchild keeps running), and output goes to temporary files so a chatty
command cannot fill memory; only a bounded head and tail are read back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess  # noqa: TID251 - the guarded executor is the one place that runs processes
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Protocol

KILL_GRACE_S = 2.0
"""After a timeout: SIGTERM to the process group, this long to exit, then SIGKILL."""


@dataclass(frozen=True)
class RunOutcome:
    """What happened when an argv ran."""

    exit_code: int | None
    """The exit status (negative: killed by that signal); None when the program could not start."""
    stdout: str
    stderr: str
    timed_out: bool = False
    error: str | None = None
    """Why the program could not start (not found, not executable, bad working directory)."""
    duration_ms: int = 0
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None


class CommandRunner(Protocol):
    """Runs one argv without a shell. Tests pass a recording fake; production uses `SubprocessRunner`."""

    def run(self, argv: list[str], *, timeout_s: float, cwd: Path | None, env: dict[str, str]) -> RunOutcome: ...


def clip(data: bytes, limit: int) -> tuple[str, bool]:
    """Decode at most `limit` bytes: the head and the tail (errors show at either end), marked when cut."""
    if len(data) <= limit:
        return data.decode("utf-8", "replace"), False
    tail = limit // 4
    head = limit - tail
    cut = len(data) - head - tail
    text = data[:head].decode("utf-8", "ignore") + f"\n... [{cut} bytes cut by errlearn] ...\n"
    return text + data[len(data) - tail :].decode("utf-8", "ignore"), True


def _read_bounded(f: IO[bytes], limit: int) -> tuple[str, bool]:
    size = f.seek(0, os.SEEK_END)
    if size <= limit:
        f.seek(0)
        return f.read().decode("utf-8", "replace"), False
    tail = limit // 4
    f.seek(0)
    head_bytes = f.read(limit - tail)
    f.seek(size - tail)
    tail_bytes = f.read(tail)
    cut = size - len(head_bytes) - len(tail_bytes)
    text = head_bytes.decode("utf-8", "ignore") + f"\n... [{cut} bytes cut by errlearn] ...\n"
    return text + tail_bytes.decode("utf-8", "ignore"), True


class SubprocessRunner:
    """The real runner.

    Args:
        max_capture_bytes: most bytes read back from each of stdout and stderr (head and tail).
    """

    def __init__(self, *, max_capture_bytes: int = 1024 * 1024) -> None:
        self.max_capture_bytes = max_capture_bytes

    def run(self, argv: list[str], *, timeout_s: float, cwd: Path | None, env: dict[str, str]) -> RunOutcome:
        if not argv or not all(isinstance(a, str) for a in argv):
            raise TypeError("argv must be a non-empty list of strings")
        started = time.monotonic()
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            try:
                proc = subprocess.Popen(
                    argv,
                    shell=False,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    cwd=cwd,
                    env=env,
                    close_fds=True,
                    start_new_session=True,  # own process group: a timeout can kill the whole tree
                )
            except (OSError, ValueError) as exc:
                return RunOutcome(
                    None,
                    "",
                    "",
                    error=f"{type(exc).__name__}: {exc}",
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            timed_out = False
            try:
                code = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
                code = self._kill_tree(proc)
            stdout, cut_out = _read_bounded(out, self.max_capture_bytes)
            stderr, cut_err = _read_bounded(err, self.max_capture_bytes)
        return RunOutcome(
            code,
            stdout,
            stderr,
            timed_out=timed_out,
            duration_ms=int((time.monotonic() - started) * 1000),
            truncated=cut_out or cut_err,
        )

    @staticmethod
    def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        try:
            if hasattr(os, "killpg"):
                os.killpg(proc.pid, sig)
            else:  # pragma: no cover - not POSIX
                proc.kill()
        except (ProcessLookupError, PermissionError):
            pass  # the group is already gone

    def _kill_tree(self, proc: subprocess.Popen[bytes]) -> int:
        """SIGTERM the group, give it a moment, then SIGKILL whatever of the group is left."""
        self._signal_group(proc, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=KILL_GRACE_S)
        # Always: a grandchild that ignored SIGTERM must not outlive the timeout.
        self._signal_group(proc, signal.SIGKILL)
        return proc.wait()
