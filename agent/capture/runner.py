"""`errlearn run`: run a build, CI or job command, pass its output through, report it when it fails.

The command runs without a shell, with stdout and stderr merged into one pipe. Every chunk is written
through as it arrives while the last `tail_bytes` are kept for `extract_errors`. The exit code is the
command's own (a signal N gives 128+N, as shells report it), and nothing that goes wrong while
reporting (a failing `send`, a closed output pipe) changes it.
"""

from __future__ import annotations

import codecs
import io
import logging
import os
import re
import select
import shlex
import signal
import subprocess  # noqa: TID251 - `errlearn run` exists to run the user's command
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import FrameType
from typing import Any, BinaryIO, Literal, TextIO, cast

from agent.capture.buildlog import Extract
from agent.capture.evidence import command_errors
from agent.ingest.scrub import Scrubber

log = logging.getLogger(__name__)

Kind = Literal["build", "ci", "job"]
_KINDS: tuple[Kind, ...] = ("build", "ci", "job")
Send = Callable[[dict[str, Any]], None]

_CHUNK = 64 * 1024
_CAN_POLL_PIPES = os.name == "posix"  # select() takes pipes on POSIX only
_SIGNAL_CHECK_SECONDS = 0.2
_MAX_CONTEXT_CHARS = 1_000
_REDACTED = "[REDACTED:key_value]"  # the Scrubber's own placeholder, which it leaves alone
# argv is scrubbed as a list first: once joined and quoted (`'--password=hunter 2'`) a value loses its edges.
# Like the Scrubber, a name counts when it *ends* with a sensitive word: `--db-password`, not `--author`.
_SECRET_NAME = re.compile(
    r"(?i)(?:pass(?:word|wd|phrase)?|pwd|secrets?|token|api[-_]?key|access[-_]?key|auth|credentials?"
    r"|private[-_]?key)$"
)
_FLAG_WITH_VALUE = re.compile(r"^(?P<flag>--?[\w.-]+)=(?P<value>.+)$")
_ENV_ASSIGNMENT = re.compile(r"^(?P<name>[A-Za-z_]\w*)=(?P<value>.+)$")


@dataclass(frozen=True)
class RunResult:
    """What happened: the command's exit code, how long it ran, and the event sent (only on failure)."""

    exit_code: int
    duration_s: float
    event: dict[str, Any] | None


def scrub_argv(argv: Sequence[str]) -> list[str]:
    """Redact values of secret-looking flags and assignments: `--password x`, `--token=x`, `API_KEY=x`.

    The joined command line also goes through the `Scrubber` (URLs with passwords, tokens, e-mails).
    """
    out: list[str] = []
    redact_next = False
    for arg in argv:
        if redact_next:
            out.append(_REDACTED)
            redact_next = False
            continue
        flag = _FLAG_WITH_VALUE.match(arg)
        assignment = _ENV_ASSIGNMENT.match(arg)
        if flag and _SECRET_NAME.search(flag.group("flag")):
            out.append(f"{flag.group('flag')}={_REDACTED}")
        elif assignment and _SECRET_NAME.search(assignment.group("name")):
            out.append(f"{assignment.group('name')}={_REDACTED}")
        else:
            out.append(arg)
            redact_next = arg.startswith("-") and bool(_SECRET_NAME.search(arg))
    return out


def _writer(stream: TextIO | BinaryIO) -> Callable[[bytes], None]:
    """A function that writes raw bytes to `stream` (a text stream's buffer, or decoded text as a last resort)."""
    buffer = getattr(stream, "buffer", None)
    if buffer is not None:
        stream.flush()  # text already written by us must come out before the child's bytes

        def write_buffer(data: bytes) -> None:
            buffer.write(data)
            buffer.flush()

        return write_buffer
    if isinstance(stream, io.TextIOBase):
        decoder = codecs.getincrementaldecoder("utf-8")("replace")

        def write_text(data: bytes) -> None:
            stream.write(decoder.decode(data))
            stream.flush()

        return write_text

    binary = cast(BinaryIO, stream)

    def write_bytes(data: bytes) -> None:
        binary.write(data)
        binary.flush()

    return write_bytes


class _Tail:
    """The last `limit` bytes written, kept in amortised linear time."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.buf = bytearray()
        self.cut = False

    def add(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) > 2 * self.limit:
            del self.buf[: len(self.buf) - self.limit]
            self.cut = True

    def text(self) -> str:
        data = bytes(self.buf[-self.limit :]) if self.limit else b""
        text = data.decode("utf-8", "replace")
        if self.cut or len(self.buf) > self.limit:
            text = text[text.find("\n") + 1 :]  # the first line is cut: drop it
        return text


@contextmanager
def _forward_signals(proc: subprocess.Popen[bytes]) -> Iterator[None]:
    """While the child runs, pass SIGINT/SIGTERM/SIGHUP on to it instead of dying.

    Ctrl-C in a terminal already reaches the child (same foreground process group); it is forwarded
    only when it was not delivered that way (e.g. `kill -INT <errlearn pid>`), so the child sees it once.
    """

    def in_terminal_foreground() -> bool:
        try:
            return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
        except (OSError, AttributeError):  # no controlling terminal, or no job control (Windows)
            return False

    def forward(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGINT and in_terminal_foreground():
            return
        with suppress(ProcessLookupError):
            proc.send_signal(signum)

    wanted = [signal.SIGINT, signal.SIGTERM, *([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])]
    previous: dict[signal.Signals, Any] = {}
    try:
        for signum in wanted:
            previous[signum] = signal.signal(signum, forward)
    except ValueError:  # not the main thread: signals stay as they are
        pass
    try:
        yield
    finally:
        for restored, handler in previous.items():
            signal.signal(restored, handler)


def _pump(proc: subprocess.Popen[bytes], write: Callable[[bytes], None], tail: _Tail) -> None:
    """Copy the child's output to `write` as it arrives; keep going (capturing) if the output is closed."""
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    passing = True
    while True:
        # A signal for us may be taken by any thread; its Python handler (forwarding it to the child) runs in
        # the main thread only once that thread leaves a blocking call. Wake up regularly so it always does.
        if _CAN_POLL_PIPES and not select.select([fd], [], [], _SIGNAL_CHECK_SECONDS)[0]:
            continue
        try:
            chunk = os.read(fd, _CHUNK)
        except InterruptedError:  # pragma: no cover - PEP 475 retries, kept for exotic platforms
            continue
        if not chunk:
            break
        tail.add(chunk)
        if passing:
            try:
                write(chunk)
            except (OSError, ValueError) as exc:  # e.g. `errlearn run -- make | head`
                passing = False
                log.warning("output stream closed (%s); the command keeps running", exc)
    proc.stdout.close()


def _wait(proc: subprocess.Popen[bytes]) -> int:
    """`proc.wait()` that still lets signal handlers run (the child may have closed its output early)."""
    while True:
        with suppress(subprocess.TimeoutExpired):
            return proc.wait(timeout=_SIGNAL_CHECK_SECONDS)


def _exit_code(returncode: int) -> int:
    return 128 - returncode if returncode < 0 else returncode


def build_event(
    found: Extract,
    *,
    service: str,
    kind: Kind,
    command: str,
    exit_code: int,
    duration_s: float,
    scrubber: Scrubber,
) -> dict[str, Any]:
    """The ingest API body for a failed command (every text field scrubbed)."""
    message = found.message or f"command exited with code {exit_code}: {command}"
    lines = [scrubber.text(line) for line in found.lines]
    command_text = scrubber.text(command)
    return {
        "service": service,
        "kind": kind,
        "context": f"{kind}: {command_text}"[:_MAX_CONTEXT_CHARS],
        "error_type": found.error_type,
        "error_message": scrubber.text(message),
        "severity": "high",
        "stack_trace": "\n".join(lines) if lines else None,
        "additional_data": {
            "kind": kind,
            "command": command_text,
            "exit_code": exit_code,
            "duration_s": duration_s,
            "tool": found.tool,
            "step": scrubber.text(found.step) if found.step else None,
        },
    }


def _safe_send(send: Send, event: dict[str, Any]) -> None:
    try:
        send(event)
    except Exception:
        log.warning("could not report the failure to errlearn; the command's exit code is kept", exc_info=True)


def run_and_capture(
    argv: Sequence[str],
    *,
    service: str,
    kind: Kind,
    send: Send,
    stdout: TextIO | BinaryIO | None = None,
    tail_bytes: int = 2_000_000,
) -> RunResult:
    """Run `argv` (no shell), stream its merged output to `stdout`, and report a failure through `send`.

    Args:
        argv: the command and its arguments; pass `["sh", "-c", "..."]` to get a shell.
        service: the service the event is reported for.
        kind: `build`, `ci` or `job`; stored in the event and its context.
        send: called once with the event dict when the command fails; an exception it raises is logged
            and otherwise ignored.
        stdout: where the command's output goes (bytes or text stream); `sys.stdout` when None.
        tail_bytes: how much of the end of the output is kept to find the error in.

    Returns:
        The exit code (127 when the command is not found, 126 when it cannot be executed, 128+N when
        killed by signal N), the duration, and the event when the exit code was not 0.
    """
    if not argv:
        raise ValueError("no command given")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, not {kind!r}")
    out: TextIO | BinaryIO = sys.stdout if stdout is None else stdout
    write = _writer(out)
    command = shlex.join(scrub_argv(argv))
    tail = _Tail(max(tail_bytes, 0))
    started = time.monotonic()
    try:
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, bufsize=0)
    except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
        not_found = not isinstance(exc, PermissionError)
        exit_code = 127 if not_found else 126
        what = "command not found" if not_found else "permission denied"
        text = f"errlearn run: {argv[0]}: {what}"
        with suppress(OSError, ValueError):
            write(f"{text}\n".encode())
        found = Extract("generic", "CommandNotFound" if not_found else "CommandNotExecutable", text, (text,))
        return _report(found, service, kind, command, exit_code, started, send)
    try:
        with _forward_signals(proc):
            _pump(proc, write, tail)
            returncode = _wait(proc)
    except BaseException:  # an unexpected error here must not leave the command running without us
        proc.kill()
        proc.wait()
        raise
    exit_code = _exit_code(returncode)
    if exit_code == 0:
        return RunResult(0, round(time.monotonic() - started, 3), None)
    try:
        found = command_errors(tail.text())
    except Exception:  # never let a parsing bug hide the failure: report the bare exit code
        log.warning("could not extract the error lines", exc_info=True)
        found = Extract("generic", "CommandFailed", "", ())
    return _report(found, service, kind, command, exit_code, started, send)


def _report(
    found: Extract, service: str, kind: Kind, command: str, exit_code: int, started: float, send: Send
) -> RunResult:
    duration_s = round(time.monotonic() - started, 3)
    try:
        event = build_event(
            found,
            service=service,
            kind=kind,
            command=command,
            exit_code=exit_code,
            duration_s=duration_s,
            scrubber=Scrubber(emails=True),
        )
    except Exception:  # a bug in reporting must not turn into a different exit code
        log.warning("could not build the error event", exc_info=True)
        return RunResult(exit_code, duration_s, None)
    _safe_send(send, event)
    return RunResult(exit_code, duration_s, event)
