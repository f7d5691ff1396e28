"""`run_and_capture` on real failing commands: exit codes, byte-exact passthrough, the event it sends."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.capture.runner import RunResult, run_and_capture, scrub_argv

LOGS = Path(__file__).parent / "data" / "buildlogs"
PY = sys.executable


class Sink:
    """A `send` callback that records what it got."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any]) -> None:
        self.events.append(event)


def run(argv: list[str], *, kind: str = "build", **kw: Any) -> tuple[RunResult, bytes, Sink]:
    out = io.BytesIO()
    sink = Sink()
    result = run_and_capture(argv, service="shop", kind=kind, send=sink, stdout=out, **kw)  # type: ignore[arg-type]
    return result, out.getvalue(), sink


def script(tmp_path: Path, name: str, body: str) -> str:
    path = tmp_path / name
    path.write_text(body)
    return str(path)


def test_failing_python_script(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "gen_assets.py",
        "import sys\n"
        "print('generating assets', flush=True)\n"
        "def load(name):\n"
        "    return open(name).read()\n"
        "load('/nonexistent/assets.json')\n",
    )
    result, output, sink = run([PY, path])
    assert result.exit_code == 1
    assert output.startswith(b"generating assets\n")
    assert output.rstrip().endswith(
        b"FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/assets.json'"
    )
    assert sink.events == [result.event]
    event = result.event
    assert event is not None
    assert event["service"] == "shop"
    assert event["kind"] == "build"
    assert event["context"] == f"build: {PY} {path}"
    assert event["severity"] == "high"
    assert event["error_type"] == "FileNotFoundError"
    assert (
        event["error_message"] == "FileNotFoundError: [Errno 2] No such file or directory: '/nonexistent/assets.json'"
    )
    stack = event["stack_trace"].splitlines()
    assert stack[0] == "Traceback (most recent call last):"
    assert stack[-1] == event["error_message"]
    assert "generating assets" not in event["stack_trace"]  # only the relevant lines, not the whole log
    data = event["additional_data"]
    assert data["kind"] == "build"
    assert data["command"] == f"{PY} {path}"
    assert data["exit_code"] == 1
    assert data["tool"] == "python"
    assert data["step"] is None
    assert data["duration_s"] == result.duration_s > 0
    json.dumps(event)  # the ingest body must be JSON


def test_passthrough_is_byte_exact(tmp_path: Path) -> None:
    # Partial lines, invalid UTF-8, carriage returns and a NUL byte all pass through unchanged.
    payload = b"\x1b[32mok\x1b[0m\r\n50%\r100%\nno newline \xff\xfe\x00 end"
    path = script(tmp_path, "emit.py", f"import sys\nsys.stdout.buffer.write({payload!r})\nsys.exit(4)\n")
    result, output, _ = run([PY, path])
    assert output == payload
    assert result.exit_code == 4


def test_stderr_is_merged_in_order(tmp_path: Path) -> None:
    path = script(
        tmp_path,
        "both.py",
        "import sys\nfor i in range(3):\n"
        "    sys.stdout.write(f'out {i}\\n'); sys.stdout.flush()\n"
        "    sys.stderr.write(f'err {i}\\n'); sys.stderr.flush()\n",
    )
    result, output, sink = run([PY, path])
    assert output == b"out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"
    assert result.exit_code == 0
    assert result.event is None
    assert sink.events == []


@pytest.fixture(autouse=True)
def _not_inside_make(monkeypatch: pytest.MonkeyPatch) -> None:
    """`make test` runs these tests inside make: a child make would inherit MAKELEVEL and print `make[1]:`."""
    for name in ("MAKELEVEL", "MAKEFLAGS", "MFLAGS", "MAKEOVERRIDES"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.skipif(shutil.which("make") is None, reason="needs GNU make on PATH (apt-get install make)")
def test_failing_make_target(tmp_path: Path) -> None:
    (tmp_path / "Makefile").write_text(
        "check:\n\t@echo 'checking toolchain'\n\t@echo 'zig not found on PATH' >&2; exit 3\n"
    )
    result, output, _ = run(["make", "-C", str(tmp_path), "check"], kind="ci")
    assert result.exit_code == 2  # make's own code when a recipe fails
    assert b"zig not found on PATH" in output
    event = result.event
    assert event is not None
    assert event["kind"] == "ci"
    assert event["error_type"] == "MakeError"
    assert event["error_message"] == "make: *** [Makefile:3: check] Error 3"
    assert "zig not found on PATH" in event["stack_trace"]
    assert event["additional_data"]["tool"] == "make"


@pytest.mark.skipif(shutil.which("gcc") is None, reason="needs gcc on PATH (apt-get install gcc)")
def test_compiler_error_through_make(tmp_path: Path) -> None:
    (tmp_path / "main.c").write_text("int main(void) {\n    return missing_value;\n}\n")
    (tmp_path / "Makefile").write_text("app: main.c\n\tgcc -c main.c -o main.o\n")
    result, output, _ = run(["make", "-C", str(tmp_path)])
    assert result.exit_code == 2
    assert b"error:" in output
    event = result.event
    assert event is not None
    assert event["error_type"] == "CompileError"
    # gcc uses typographic quotes in a UTF-8 locale, ASCII ones otherwise
    assert re.match(r"main\.c:2:12: error: .missing_value. undeclared", event["error_message"])
    assert event["additional_data"]["tool"] == "gcc"
    assert event["stack_trace"].splitlines()[-1].startswith("make: *** [Makefile:2: app] Error 1")


def test_replayed_docker_build(tmp_path: Path) -> None:
    log = LOGS / "docker_buildkit_pip.log"
    path = script(
        tmp_path,
        "fake_docker.py",
        f"import sys, pathlib\nsys.stdout.buffer.write(pathlib.Path({str(log)!r}).read_bytes())\nsys.exit(1)\n",
    )
    result, output, _ = run([PY, path, "build", "-t", "shop:dev", "."])
    assert output == log.read_bytes()
    assert result.exit_code == 1
    event = result.event
    assert event is not None
    assert event["error_type"] == "DockerBuildError"
    assert event["error_message"] == "ERROR: No matching distribution found for psycopg2-binary==2.9.99"
    assert event["additional_data"]["step"] == "#8 [builder 3/7] RUN pip install -r requirements.txt"
    assert event["additional_data"]["tool"] == "docker"
    assert event["stack_trace"].splitlines()[0] == "#8 [builder 3/7] RUN pip install -r requirements.txt"


def test_command_not_found() -> None:
    result, output, sink = run(["errlearn-no-such-command-xyz", "--flag"])
    assert result.exit_code == 127
    assert b"errlearn-no-such-command-xyz: command not found" in output
    assert len(sink.events) == 1
    assert sink.events[0]["error_type"] == "CommandNotFound"
    assert sink.events[0]["additional_data"]["exit_code"] == 127


def test_not_executable(tmp_path: Path) -> None:
    path = tmp_path / "build.sh"
    path.write_text("#!/bin/sh\necho hi\n")
    result, _, sink = run([str(path)])
    assert result.exit_code == 126
    assert sink.events[0]["error_type"] == "CommandNotExecutable"


def test_no_shell_is_involved(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result, output, _ = run([PY, "-c", "import sys; print(sys.argv[1:])", f"; touch {marker}", "$(id)"])
    assert result.exit_code == 0
    assert not marker.exists()
    assert b"$(id)" in output


def test_signal_exit_code_is_128_plus_n() -> None:
    result, _, sink = run([PY, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"])
    assert result.exit_code == 128 + signal.SIGTERM
    assert sink.events[0]["additional_data"]["exit_code"] == 143


class _Watch(io.BytesIO):
    """An output stream that tells when a marker has been written."""

    def __init__(self, marker: bytes) -> None:
        super().__init__()
        self.marker = marker
        self.seen = threading.Event()

    def write(self, data: Any) -> int:
        n = super().write(data)
        if self.marker in self.getvalue():
            self.seen.set()
        return n


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("target", ["process", "another thread"])
def test_interrupt_is_forwarded_to_the_child(monkeypatch: pytest.MonkeyPatch, target: str) -> None:
    # The path under test is `kill -INT <errlearn pid>`: not a terminal's Ctrl-C (which reaches the child by
    # itself, so the runner does not forward it). Pin "no controlling terminal" whatever stdin this run has.
    monkeypatch.setattr(os, "tcgetpgrp", lambda _fd: (_ for _ in ()).throw(OSError("no terminal")))
    child = (
        "import sys, time\n"
        "try:\n"
        "    print('ready', flush=True)\n"  # inside the try: SIGINT may come right after it
        "    time.sleep(30)\n"
        "except KeyboardInterrupt:\n"
        "    print('child got SIGINT', flush=True)\n"
        "    sys.exit(130)\n"
    )
    out = _Watch(b"ready")
    sink = Sink()

    def interrupt() -> None:
        if out.seen.wait(10):
            if target == "process":
                os.kill(os.getpid(), signal.SIGINT)
            else:
                # The kernel hands a process-wide signal to any thread that does not block it; in a busy
                # process (a test run, a service with threads) that is often not the main thread, which
                # then must not sit in a blocking read until the child happens to print.
                signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    # A process started in the background (`cmd &`, some CI runners) inherits SIGINT as *ignored*, and the
    # runner rightly leaves an ignored SIGINT alone. This test is about an interactive Ctrl-C: set that up.
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    # Some launchers also *block* SIGINT (it stays pending for ever): unblock it for this test.
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        before = signal.getsignal(signal.SIGINT)
        threading.Thread(target=interrupt, daemon=True).start()
        started = time.monotonic()
        result = run_and_capture([PY, "-c", child], service="shop", kind="job", send=sink, stdout=out)
        assert time.monotonic() - started < 10
        assert b"child got SIGINT" in out.getvalue()
        assert result.exit_code == 130
        assert signal.getsignal(signal.SIGINT) is before  # our handler is gone again
    finally:
        signal.signal(signal.SIGINT, inherited)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_interrupt_reaches_a_child_that_closed_its_output(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runner has read to the end of the output and now waits for the exit: a signal must still get through.
    monkeypatch.setattr(os, "tcgetpgrp", lambda _fd: (_ for _ in ()).throw(OSError("no terminal")))
    child = "import os, time\nprint('ready', flush=True)\nos.close(1)\nos.close(2)\ntime.sleep(30)\n"
    out = _Watch(b"ready")

    def interrupt() -> None:
        if out.seen.wait(10):
            time.sleep(0.5)  # let the runner reach the end of the output
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)

    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    mask = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    try:
        threading.Thread(target=interrupt, daemon=True).start()
        started = time.monotonic()
        result = run_and_capture([PY, "-c", child], service="shop", kind="job", send=Sink(), stdout=out)
        assert time.monotonic() - started < 10
        assert result.exit_code in (130, 128 + signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, inherited)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def test_send_failure_changes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    def broken_send(event: dict[str, Any]) -> None:
        raise ConnectionError("errlearn server is down")

    out = io.BytesIO()
    with caplog.at_level(logging.WARNING, logger="agent.capture.runner"):
        result = run_and_capture(
            [PY, "-c", "print('building'); raise SystemExit(7)"],
            service="shop",
            kind="build",
            send=broken_send,
            stdout=out,
        )
    assert result.exit_code == 7
    assert out.getvalue() == b"building\n"
    assert result.event is not None
    assert "could not report" in caplog.text


def test_secrets_in_argv_never_reach_the_event() -> None:
    argv = [
        PY,
        "-c",
        "import sys; print('deploy failed: error: 401'); sys.exit(1)",
        "--password=hunter2",
        "--token",
        "tok-ABCDEF123456",
        "DB_PASSWORD=s3cr3t-value",
        "https://deploy:pw-9876@registry.example.com/shop",
        "--notify=ops@example.com",
    ]
    result, _, sink = run(argv)
    assert result.exit_code == 1
    blob = json.dumps(sink.events)
    for secret in ("hunter2", "tok-ABCDEF123456", "s3cr3t-value", "pw-9876", "ops@example.com"):
        assert secret not in blob
    assert "registry.example.com" in blob  # the host stays: only the credentials go


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--password", "x", "--verbose", "y"], ["--password", "[REDACTED:key_value]", "--verbose", "y"]),
        (["--api-key=abc", "-p", "8080"], ["--api-key=[REDACTED:key_value]", "-p", "8080"]),
        (["keytool", "-storepass", "changeit"], ["keytool", "-storepass", "[REDACTED:key_value]"]),
        (["GITHUB_TOKEN=ghp_x", "PATH=/bin"], ["GITHUB_TOKEN=[REDACTED:key_value]", "PATH=/bin"]),
        (["--author", "Jane", "--password-file", "pw.txt"], ["--author", "Jane", "--password-file", "pw.txt"]),
        (["make", "build"], ["make", "build"]),
    ],
)
def test_scrub_argv(argv: list[str], expected: list[str]) -> None:
    assert scrub_argv(argv) == expected


def test_quoted_secret_with_spaces_is_fully_removed() -> None:
    result, _, _ = run([PY, "-c", "raise SystemExit(2)", "--password=hunter 2 extra"])
    assert result.event is not None
    assert "hunter" not in json.dumps(result.event)
    assert "extra" not in json.dumps(result.event)


def test_text_streams(tmp_path: Path) -> None:
    argv = [PY, "-c", "import sys; sys.stdout.buffer.write('héllo\\n'.encode())"]
    text = io.StringIO()
    result = run_and_capture(argv, service="s", kind="job", send=Sink(), stdout=text)
    assert result.exit_code == 0
    assert text.getvalue() == "héllo\n"
    raw = io.BytesIO()
    wrapper = io.TextIOWrapper(raw, encoding="utf-8")
    wrapper.write("before\n")
    run_and_capture(argv, service="s", kind="job", send=Sink(), stdout=wrapper)
    assert raw.getvalue() == "before\nhéllo\n".encode()


def test_closed_output_does_not_stop_the_command(tmp_path: Path) -> None:
    done = tmp_path / "done"
    child = (
        f"import pathlib\nfor i in range(20000): print('line', i)\n"
        f"pathlib.Path({str(done)!r}).touch()\nraise SystemExit(3)"
    )
    out = io.BytesIO()
    out.close()  # like a reader that went away (`errlearn run -- make | head`)
    sink = Sink()
    result = run_and_capture([PY, "-c", child], service="s", kind="build", send=sink, stdout=out)
    assert result.exit_code == 3
    assert done.exists()
    assert sink.events and "line 19999" in sink.events[0]["stack_trace"]


def test_large_output_is_passed_through_and_tail_bounded(tmp_path: Path) -> None:
    child = (
        "import sys\n"
        "w = sys.stdout.write\n"
        "for i in range(200000): w(f'compiling unit {i:06d} ' + 'x' * 40 + '\\n')\n"
        "w('src/last.c:9:1: error: expected declaration\\n')\n"
        "sys.exit(1)\n"
    )
    started = time.monotonic()
    result, output, _ = run([PY, "-c", child], tail_bytes=64_000)
    assert time.monotonic() - started < 20
    assert len(output) > 10_000_000
    assert output.endswith(b"src/last.c:9:1: error: expected declaration\n")
    assert result.event is not None
    assert result.event["error_message"] == "src/last.c:9:1: error: expected declaration"
    assert len(result.event["stack_trace"]) <= 8 * 1024


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="no command"):
        run_and_capture([], service="s", kind="job", send=Sink())
    with pytest.raises(ValueError, match="kind must be one of build, ci, job"):
        run_and_capture(["true"], service="s", kind="deploy", send=Sink())  # type: ignore[arg-type]


def test_a_broken_output_stream_kills_the_command(tmp_path: Path) -> None:
    class Exploding(io.BytesIO):
        def write(self, data: Any) -> int:
            raise RuntimeError("bug in the stream")

    marker = tmp_path / "still-running"
    child = f"import time, pathlib\nprint('x', flush=True)\ntime.sleep(3)\npathlib.Path({str(marker)!r}).touch()"
    with pytest.raises(RuntimeError, match="bug in the stream"):
        run_and_capture([PY, "-c", child], service="s", kind="job", send=Sink(), stdout=Exploding())
    time.sleep(3.5)
    assert not marker.exists()


def test_failure_without_error_lines_reports_the_exit_code() -> None:
    result, _, _ = run([PY, "-c", "raise SystemExit(5)"])
    assert result.event is not None
    assert result.event["error_type"] == "CommandFailed"
    assert result.event["error_message"].startswith("command exited with code 5:")
