"""The extractor table over real recorded build logs (tests/data/buildlogs), plus bounds and speed."""

from __future__ import annotations

import time
from pathlib import Path
from typing import NamedTuple

import pytest

from agent.capture.buildlog import MAX_BYTES, MAX_LINE_CHARS, clean_lines, extract_errors

LOGS = Path(__file__).parent / "data" / "buildlogs"
L, R = "\u2018", "\u2019"  # gcc quotes names with typographic quotes in a UTF-8 locale


class Case(NamedTuple):
    tool: str
    error_type: str
    message: str
    """A substring of the one-line message."""
    lines: tuple[str, ...] = ()
    """Substrings that must each occur in some kept line."""
    step: str | None = None


CASES: dict[str, Case] = {
    "python_traceback.log": Case(
        "python",
        "FileNotFoundError",
        "FileNotFoundError: [Errno 2] No such file or directory: '/tmp/bl/py/config.json'",
        ("Traceback (most recent call last):", 'File "/tmp/bl/py/app.py", line 6, in load_config'),
    ),
    "python_modulenotfound.log": Case(
        "python",
        "ModuleNotFoundError",
        "No module named 'yaml_nonexistent_plugin'",
        ("import yaml_nonexistent_plugin",),
    ),
    "python_chained.log": Case(
        "python",
        "ConfigError",
        "ConfigError: APP_PORT must be an integer",
        ("ValueError: invalid literal for int() with base 10: 'eighty'", "The above exception was the direct cause"),
    ),
    "python_syntax_error.log": Case(
        "python",
        "SyntaxError",
        "SyntaxError: invalid syntax",
        ('File "/tmp/bl/py/syn.py", line 3', "def main(:"),
    ),
    "gcc_compile.log": Case(
        "gcc",
        "CompileError",
        f"main.c:7:17: error: too many arguments to function {L}add{R}",
        (
            f"main.c: In function {L}main{R}:",
            f"main.c:9:13: error: expected {L};{R} before {L}}}{R} token",
            "int total = add(1, 2, 3);",
        ),
    ),
    "gxx_compile_color.log": Case(
        "gcc",
        "CompileError",
        "server.cpp:12:34: error: conversion from",
        (f"server.cpp:13:12: error: cannot convert {L}std::string{R}", "std::string total = seen.size();"),
    ),
    "gcc_link.log": Case(
        "gcc",
        "LinkError",
        "undefined reference to `compute_checksum'",
        ("collect2: error: ld returned 1 exit status",),
    ),
    "make_gcc.log": Case(
        "gcc",
        "CompileError",
        "main.c:7:17: error: too many arguments",
        ("make: *** [Makefile:8: main.o] Error 1", f"{L}totl{R} undeclared"),
    ),
    "make_recipe.log": Case(
        "make", "MakeError", "make: *** [Makefile:7: deps] Error 2", ("zig not found on PATH", "checking toolchain")
    ),
    "make_no_rule.log": Case("make", "MakeError", "No rule to make target 'assets/logo.svg'"),
    "cargo_build.log": Case(
        "cargo",
        "CompileError",
        "error[E0308]: mismatched types",
        ("--> src/main.rs:12:21", "expected `u32`, found `u16`", "error: could not compile `rs`"),
    ),
    "cargo_borrow_tty.log": Case(
        "cargo",
        "CompileError",
        "error[E0499]: cannot borrow `hits` as mutable more than once at a time",
        ("--> src/main.rs:6:5", "second mutable borrow occurs here", "error: could not compile `rs`"),
    ),
    "cargo_test_panic.log": Case(
        "cargo",
        "Panic",
        "panicked at src/main.rs:2:15: port must be a number: ParseIntError",
        ("test result: FAILED.", "rs::parse_port"),
    ),
    "npm_run_build.log": Case(
        "node",
        "Error",
        "Error: ENOENT: no such file or directory, open '/tmp/bl/js/public/manifest.json'",
        ("at readManifest (/tmp/bl/js/scripts/build.js:5:18)", "node:fs:448", "Node.js v20"),
    ),
    "npm_ci_no_lockfile.log": Case(
        "npm",
        "NpmError",
        "The `npm ci` command can only install with an existing package-lock.json",
        ("npm error code EUSAGE", "npm error A complete log of this run"),
    ),
    "npm_ejsonparse.log": Case(
        "npm", "NpmError", "JSON.parse Invalid package.json: JSONParseError", ("npm error code EJSONPARSE",)
    ),
    "npm_run_exit_only.log": Case("generic", "CommandFailed", "", ('> node -e "process.exit(3)"',)),
    "pip_setup_error.log": Case(
        "pip",
        "PipInstallError",
        "RuntimeError: fastgeo requires Python >= 3.13",
        ("error: subprocess-exited-with-error", "error: metadata-generation-failed", 'File "<string>", line 6'),
    ),
    "pip_setup_error_tty.log": Case(
        "pip",
        "PipInstallError",
        "RuntimeError: fastgeo requires Python >= 3.13",
        ("error: subprocess-exited-with-error", "Preparing metadata (pyproject.toml) did not run successfully."),
    ),
    "pip_not_a_project.log": Case("pip", "PipInstallError", "ERROR: Directory './notapkg' is not installable."),
    "pytest_failures.log": Case(
        "pytest",
        "TestFailure",
        "FAILED tests/test_pricing.py::test_discount_rounding - assert 16.99 == 17.0",
        (
            "E       assert 16.99 == 17.0",
            "FAILED tests/test_pricing.py::test_parse_amount[12,50]",
            "2 failed, 2 passed",
        ),
    ),
    "pytest_collection_error.log": Case(
        "pytest",
        "TestError",
        "ERROR tests/test_export.py - ImportError: cannot import name 'export_csv' from 'pricing'",
        ("1 error in",),
    ),
    "mypy_errors.log": Case(
        "mypy",
        "TypeCheckError",
        'inventory.py:18: error: Incompatible return value type (got "None", expected "Item")',
        ('inventory.py:21: error: Argument 2 to "Item"', "Found 2 errors in 1 file"),
    ),
    "tsc_errors.log": Case(
        "tsc",
        "TypeCheckError",
        "src/api.ts(7,28): error TS2367",
        ("src/api.ts(11,26): error TS2339: Property 'name' does not exist on type 'User'.",),
    ),
    "tsc_errors_pretty.log": Case(
        "tsc",
        "TypeCheckError",
        "src/api.ts:7:28 - error TS2367",
        ("return users.find((u) => u.id === id);", "Found 2 errors in the same file"),
    ),
    "curl_progress.log": Case("generic", "CommandFailed", "curl: (22) The requested URL returned error: 404"),
    "docker_buildkit_pip.log": Case(
        "docker",
        "DockerBuildError",
        "ERROR: No matching distribution found for psycopg2-binary==2.9.99",
        (
            "#8 [builder 3/7] RUN pip install -r requirements.txt",
            'ERROR: failed to solve: process "/bin/sh -c pip install -r requirements.txt" did not complete',
            "8 | >>> RUN pip install -r requirements.txt",
        ),
        step="#8 [builder 3/7] RUN pip install -r requirements.txt",
    ),
    "docker_buildkit_npm.log": Case(
        "docker",
        "DockerBuildError",
        "src/pages/Checkout.tsx(48,23): error TS2345",
        ("src/api/client.ts(12,5): error TS2322", "ERROR: failed to build: failed to solve:"),
        step="#12 [frontend 6/6] RUN npm run build",
    ),
    "docker_legacy_make.log": Case(
        "docker",
        "DockerBuildError",
        "internal/cart/cart.go:42:15: undefined: decimal.NewFromFloat64",
        ("make: *** [Makefile:14: build] Error 1", "The command '/bin/sh -c make build' returned a non-zero code: 2"),
        step="Step 5/9 : RUN make build",
    ),
}


def read_log(name: str) -> str:
    # Bytes, not read_text(): universal newlines would turn progress `\r` into line breaks.
    return (LOGS / name).read_bytes().decode("utf-8", "replace")


def test_every_recorded_log_has_an_expectation() -> None:
    assert sorted(p.name for p in LOGS.glob("*.log")) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_recorded_log(name: str) -> None:
    case = CASES[name]
    found = extract_errors(read_log(name))
    assert (found.tool, found.error_type) == (case.tool, case.error_type)
    assert case.message in found.message
    assert "\n" not in found.message
    for wanted in case.lines:
        assert any(wanted in line for line in found.lines), f"{wanted!r} not kept"
    assert found.step == case.step
    assert all("\x1b" not in line and "\r" not in line for line in found.lines)
    assert len(found.lines) <= 60
    assert sum(len(line.encode()) + 1 for line in found.lines) <= MAX_BYTES


def test_docker_keeps_step_header_first_and_solver_error_last() -> None:
    found = extract_errors(read_log("docker_buildkit_pip.log"))
    assert found.lines[0] == "#8 [builder 3/7] RUN pip install -r requirements.txt"
    assert found.lines[-1].startswith("ERROR: failed to solve:")
    # The step's own output, without BuildKit's `#8 3.008` prefixes, and nothing from the cancelled step #7.
    assert "ERROR: No matching distribution found for psycopg2-binary==2.9.99" in found.lines
    assert not any("apt-get" in line or "deb.debian.org" in line for line in found.lines)


def test_docker_tty_progress_mode() -> None:
    output = "\n".join(
        [
            " => [builder 2/7] WORKDIR /app                                      0.0s",
            " => ERROR [builder 3/7] RUN pip install -r requirements.txt         3.1s",
            "------",
            " > [builder 3/7] RUN pip install -r requirements.txt:",
            "2.911 ERROR: Could not find a version that satisfies the requirement nosuchpkg==1.0 (from versions: none)",
            "2.912 ERROR: No matching distribution found for nosuchpkg==1.0",
            "------",
            'ERROR: failed to solve: process "/bin/sh -c pip install -r requirements.txt" did not complete: code 1',
        ]
    )
    found = extract_errors(output)
    assert (found.tool, found.step) == ("docker", "[builder 3/7] RUN pip install -r requirements.txt")
    assert found.message == "ERROR: No matching distribution found for nosuchpkg==1.0"


def test_docker_failure_outside_a_step_uses_the_solver_line() -> None:
    output = (
        "#1 [internal] load build definition from Dockerfile\n#1 DONE 0.0s\n"
        "ERROR: failed to solve: python:3.99-slim: failed to resolve source metadata: not found\n"
    )
    found = extract_errors(output)
    assert found.tool == "docker"
    assert found.step is None
    assert found.message.startswith("ERROR: failed to solve: python:3.99-slim")


def test_python_traceback_after_make_keeps_make_line() -> None:
    log = read_log("python_traceback.log") + "make: *** [Makefile:3: assets] Error 1\n"
    found = extract_errors(log)
    assert found.tool == "python"
    assert found.lines[-1] == "make: *** [Makefile:3: assets] Error 1"


def test_carriage_return_progress_keeps_the_final_state() -> None:
    lines = clean_lines(read_log("curl_progress.log"))
    assert "100 28.6M  100 28.6M    0     0  18.4M      0  0:00:01  0:00:01 --:--:-- 18.4M" in lines
    assert not any(" 45 28.6M" in line for line in lines)


def test_carriage_returns() -> None:
    assert clean_lines("a\r\nb\r\r\n50%\r100%\r\r\nx\r") == ["a", "b", "100%", "x"]
    assert clean_lines("\r\r\n") == []


def test_ansi_and_backspaces_are_removed() -> None:
    assert clean_lines("\x1b[01;31m\x1b[Kerror: \x1b[m\x1b[Kboom\r\n  spinner -\b \berror\x1b[?25h") == [
        "error: boom",
        "  spinner error",
    ]


def test_generic_fallback_keeps_error_lines_and_the_tail() -> None:
    lines = [f"step {i} ok" for i in range(200)]
    lines[10] = "fatal: repository 'https://git.example.com/shop.git/' not found"
    found = extract_errors("\n".join(lines))
    assert found.tool == "generic"
    assert found.message == lines[10]
    assert lines[10] in found.lines
    assert found.lines[-1] == "step 199 ok"
    assert "step 50 ok" not in found.lines


def test_generic_type_word_is_used_when_present() -> None:
    found = extract_errors("loading\njava.lang.IllegalStateException: pool closed\n")
    assert (found.tool, found.error_type) == ("generic", "IllegalStateException")


def test_empty_output() -> None:
    found = extract_errors("")
    assert (found.tool, found.message, found.lines) == ("generic", "", ())


def test_max_lines_is_respected_and_validated() -> None:
    errors = "\n".join(f"src/m{i}.c:{i}:1: error: unknown type name {L}foo{i}{R}" for i in range(500))
    found = extract_errors(errors + "\nmake: *** [Makefile:9: all] Error 1\n", max_lines=20)
    assert len(found.lines) <= 20
    assert found.lines[0].startswith("src/m0.c:0:1: error:")  # the first errors matter most for a compiler
    assert found.lines[-1] == "make: *** [Makefile:9: all] Error 1"
    assert any("lines omitted" in line for line in found.lines)
    with pytest.raises(ValueError, match="max_lines"):
        extract_errors("x", max_lines=3)


def test_python_long_traceback_keeps_the_exception_line() -> None:
    frames = "".join(f'  File "/app/m{i}.py", line {i}, in f{i}\n    f{i + 1}()\n' for i in range(400))
    found = extract_errors(f"Traceback (most recent call last):\n{frames}RecursionError: maximum recursion depth\n")
    assert found.error_type == "RecursionError"
    assert found.lines[0] == "Traceback (most recent call last):"
    assert found.lines[-1] == "RecursionError: maximum recursion depth"
    assert len(found.lines) <= 60


PATHOLOGICAL = {
    "short lines, errors everywhere": "error: x\n" * 1_200_000,
    "short lines, no colon anywhere": "line 12345\n" * 1_000_000,
    "lines that almost look like compiler output": "src/module.c is being compiled now\n" * 300_000,
    "one 10 MB line": "A" * 10_000_000,
    "very long lines": ("x" * 100_000 + " error: long\n") * 100,
    "progress redraws": "\r".join(f"{i % 100}% downloading" for i in range(600_000)) + "\nerror: network down\n",
    "spinner backspaces": "building " + "|\b/\b-\b\\\b" * 1_500_000 + "\nerror: out of disk\n",
    "ansi soup": "\x1b[1;31merror\x1b[0m: \x1b[1mbad\x1b[0m thing\n" * 300_000,
    "a word that almost looks like an exception": ("Z" + "a" * 50_000 + "\n") * 200,
    "gcc errors": f"main.c:1:1: error: expected {L};{R}\n    1 | x\n      | ^\n" * 250_000,
}


@pytest.mark.parametrize("name", sorted(PATHOLOGICAL))
def test_pathological_input_is_fast_and_bounded(name: str) -> None:
    output = PATHOLOGICAL[name]
    assert len(output) >= 5_000_000
    started = time.perf_counter()
    found = extract_errors(output)
    elapsed = time.perf_counter() - started
    assert elapsed < 5.0, f"{name}: {elapsed:.2f}s"
    assert len(found.lines) <= 60
    assert all(len(line) <= MAX_LINE_CHARS for line in found.lines)
    assert sum(len(line.encode()) + 1 for line in found.lines) <= MAX_BYTES
    assert len(found.message) <= 500
