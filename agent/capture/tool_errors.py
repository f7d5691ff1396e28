"""Extractors for tools that print their own errors: compilers, type checkers, npm, make, Python
tracebacks, Node.js uncaught exceptions, pytest failures and Rust panics.

Each is a function of a cleaned `Log` that returns an `Extract` or None; `RULES` is their part of the
table in `agent.capture.buildlog`, most specific first. Wrappers that run other tools (Docker, pip)
live there, since they call the whole table again on their step's output.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.capture.logtext import (
    Extract,
    Extractor,
    Log,
    Rule,
    dedent,
    first_index,
    first_match,
    fit,
    last_index,
    one_line,
)

# --- anchored blocks: compilers, type checkers, npm, make -------------------------------------


@dataclass(frozen=True)
class _Block:
    """Error lines of one tool: each `anchor` line starts a block that `follow` lines continue.

    Attributes:
        error_type: fixed type, unless `anchor` has a named group `type`.
        before: a line just above an anchor that belongs to it ("In function ...").
        follow: lines below an anchor that belong to it (code snippets, notes), at most `follow_max`.
        prefer: the message is the first kept line matching this, else the first anchor.
        context: plain lines kept above the first anchor (a recipe's own output above `make: ***`).
        head: on overflow, how many lines to keep from the start (the rest comes from the end).
    """

    error_type: str
    anchor: re.Pattern[str]
    before: re.Pattern[str] | None = None
    follow: re.Pattern[str] | None = None
    follow_max: int = 12
    prefer: re.Pattern[str] | None = None
    context: int = 0
    head: int = 40


def _blocks(tool: str, spec: _Block) -> Extractor:
    def extract(log: Log, max_lines: int) -> Extract | None:
        lines = log.lines
        start = first_index(spec.anchor, lines)
        if start < 0:
            return None
        kept: list[str] = []
        for j in range(max(0, start - spec.context), start):
            if lines[j].strip():
                kept.append(lines[j])
        anchors = 0
        i = start
        # Stop once there is far more than fits: bounded work even with 100k error lines.
        while i < len(lines) and len(kept) < 4 * max_lines:
            line = lines[i]
            if not spec.anchor.search(line):
                i += 1
                continue
            anchors += 1
            if spec.before and i > 0 and spec.before.search(lines[i - 1]) and (not kept or kept[-1] != lines[i - 1]):
                kept.append(lines[i - 1])
            kept.append(line)
            i += 1
            taken = 0
            while spec.follow and i < len(lines) and taken < spec.follow_max and not spec.anchor.search(lines[i]):
                if not spec.follow.search(lines[i]):
                    break
                kept.append(lines[i])
                i += 1
                taken += 1
        match = spec.anchor.search(lines[start])
        error_type = spec.error_type
        if match and "type" in spec.anchor.groupindex and match.group("type"):
            error_type = match.group("type")
        chosen = lines[start]
        if spec.prefer is not None:
            preferred = first_index(spec.prefer, kept)
            chosen = kept[preferred] if preferred >= 0 else chosen
        return Extract(tool, error_type, one_line(chosen), fit(kept, max_lines, spec.head))

    return extract


_C_EXT = r"(?:c|cc|cpp|cxx|c\+\+|h|hh|hpp|hxx|m|mm|cu|cuh|s|S|ino|inl|tcc|ipp)"
_GCC = _Block(
    "CompileError",
    anchor=re.compile(
        rf"^[^\s:][^:\n]*\.{_C_EXT}:\d+(?::\d+)?: (?:fatal )?error: "
        r"|^(?:cc1\w*|g?cc|[gc]\+\+|clang(?:\+\+)?|cc): (?:fatal )?error: (?!linker command failed)"
    ),
    before=re.compile(
        r"^\S.*: In (?:(?:static |member )*function|constructor|destructor|instantiation|lambda)|^In file"
    ),
    follow=re.compile(rf"^\s+\d*\s*\||^[^\s:][^:\n]*\.{_C_EXT}:\d+(?::\d+)?: (?:note|required from)"),
    head=45,
)
_LD = _Block(
    "LinkError",
    anchor=re.compile(
        r"undefined reference to|multiple definition of|^/\S*ld(?:\.\w+)?: |^ld(?:\.\w+)?: "
        r"|^collect2: error: |linker command failed|^Undefined symbols for architecture"
    ),
    prefer=re.compile(r"undefined reference to|multiple definition of|cannot find -l|Undefined symbols"),
)
_GO = _Block(
    "CompileError",
    anchor=re.compile(r"^[^\s:]+\.go:\d+:\d+: "),
    before=re.compile(r"^# \S+$"),
)
_TSC = _Block(
    "TypeCheckError",
    anchor=re.compile(r"^\S+\.(?:[cm]?tsx?|jsx?|vue|svelte)(?:\(\d+,\d+\): | ?:\d+:\d+ - )error TS\d+: "),
    follow=re.compile(r"^\s*$|^\d+\s|^\s+\S"),
    follow_max=8,
)
_MYPY = _Block(
    "TypeCheckError",
    anchor=re.compile(r"^\S+\.pyi?:\d+(?::\d+)?: error: "),
    follow=re.compile(r"^\S+\.pyi?:\d+(?::\d+)?: note: |^    "),
)
_RUSTC = _Block(
    "CompileError",
    anchor=re.compile(r"^error(?:\[E\d+\])?: (?!could not compile|aborting due|test failed)"),
    follow=re.compile(r"^(?!\s*$)(?!(?:error|warning)\b)(?!For more information)"),
    follow_max=25,
)
_NPM_LINE = re.compile(r"^npm (?:ERR!|error)(?: |$)")
_NPM = _Block(
    "NpmError",
    anchor=_NPM_LINE,
    prefer=re.compile(r"^npm (?:ERR!|error) (?!code\b|errno\b|syscall\b|path\b|dest\b|A complete log|Log files|\s)\S"),
    head=45,
)
_MAKE = _Block(
    "MakeError",
    anchor=re.compile(r"^(?:g?make|mingw32-make)(?:\[\d+\])?: \*\*\* |^\S*[Mm]akefile\S*:\d+: \*\*\* "),
    context=8,
    head=20,
)


# --- Python tracebacks ------------------------------------------------------------------------

_TB_START = re.compile(r"^(?P<indent>\s*)Traceback \(most recent call last\):$")
_TB_CHAIN = re.compile(r"^\s*(?:During handling of the above exception|The above exception was the direct cause)")
_PY_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s|:$|$)")
# A script that does not compile prints no "Traceback" header, only the place and the error.
_PY_SYNTAX = re.compile(r"^(?P<type>SyntaxError|IndentationError|TabError): ", re.M)
_PY_FILE = re.compile(r'^\s*File ".*", line \d+')


def _traceback_end(lines: Sequence[str], start: int) -> int:
    """Index of the exception line that closes the traceback starting at `start` (-1 if none)."""
    match = _TB_START.match(lines[start])
    indent = len(match.group("indent")) if match else 0
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if not line.strip():
            continue
        if len(line) - len(line.lstrip()) <= indent:
            return i
    return -1


def _python(log: Log, max_lines: int) -> Extract | None:
    lines = log.lines
    start = last_index(_TB_START, lines)
    if start < 0:
        return _syntax_error(lines, max_lines)
    end = _traceback_end(lines, start)
    if end < 0:
        return None
    exc_line = lines[end].strip()
    match = _PY_EXC.match(exc_line)
    error_type = match.group("type").rsplit(".", 1)[-1] if match else "PythonError"
    blocks = [lines[start : end + 1]]
    # Follow up to two chained tracebacks back: the cause is often the most useful part.
    cursor = start
    for _ in range(2):
        j = cursor - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        if j < 0 or not _TB_CHAIN.match(lines[j]):
            break
        prev = last_index(_TB_START, lines[:j])
        if prev < 0:
            break
        blocks.insert(0, lines[prev : j + 1])
        cursor = prev
    kept = dedent([line for block in blocks for line in block])
    return Extract("python", error_type, one_line(exc_line), fit(kept, max_lines, head=4))


def _syntax_error(lines: Sequence[str], max_lines: int) -> Extract | None:
    end, match = first_match(_PY_SYNTAX, lines)
    if match is None:
        return None
    start = next((j for j in range(end - 1, max(end - 6, -1), -1) if _PY_FILE.match(lines[j])), end)
    kept = dedent(lines[start : end + 1])
    return Extract("python", match.group("type"), one_line(lines[end]), fit(kept, max_lines, head=4))


# --- Node.js uncaught exceptions --------------------------------------------------------------

_JS_ERR = re.compile(r"^(?:Uncaught )?(?P<type>[A-Z]\w*(?:Error|Exception)|Error)\b(?::.*)?(?: \{)?$")
_JS_AT = re.compile(r"^\s+at \S")
_JS_WHERE = re.compile(r"^(?:node:)?\S+:\d+$")


def _node(log: Log, max_lines: int) -> Extract | None:
    lines = log.lines
    found = next(
        ((i, m) for i in range(len(lines) - 1) if (m := _JS_ERR.match(lines[i])) and _JS_AT.match(lines[i + 1])),
        None,
    )
    if found is None:
        return None
    i, match = found
    # Node prints `file:line`, the throwing source line and a caret above the error: keep them.
    top = i
    for j in range(i - 1, max(i - 6, -1), -1):
        if _JS_WHERE.match(lines[j]):
            top = j
            break
    end = i + 1
    while end < len(lines) and end - i < 40 and lines[end].strip():
        end += 1
    if end + 1 < len(lines) and lines[end + 1].startswith("Node.js v"):
        end += 2
    message = lines[i].removesuffix(" {")
    return Extract("node", match.group("type"), one_line(message), fit(lines[top:end], max_lines, head=20))


# --- pytest ----------------------------------------------------------------------------------

_PT_HEADER = re.compile(r"^_{3,} (?P<name>.+?) _{3,}$")
_PT_SECTION = re.compile(r"^={3,} (?:FAILURES|ERRORS) ={3,}$")
_PT_DETAIL = re.compile(r"^(?:>|E |\S+:\d+: \w)")
_PT_SUMMARY = re.compile(r"^(?:FAILED|ERROR) \S")
_PT_FINAL = re.compile(r"^={3,} .*\b(?:failed|errors?)\b.* in [\d.]+s")


def _pytest(log: Log, max_lines: int) -> Extract | None:
    lines = log.lines
    section = first_index(_PT_SECTION, lines)
    kept: list[str] = []
    first_e = ""
    if section >= 0:
        header = first_index(_PT_HEADER, lines, section + 1)
        if header >= 0:
            kept.append(lines[header])
            for j in range(header + 1, len(lines)):
                line = lines[j]
                if _PT_HEADER.match(line) or line.startswith("====="):
                    break
                if _PT_DETAIL.match(line) and len(kept) < max_lines // 2:
                    kept.append(line)
                    if line.startswith("E ") and not first_e:
                        first_e = line[1:].strip()
    summary = [line for line in lines if _PT_SUMMARY.match(line)][: max_lines // 2]
    final = last_index(_PT_FINAL, lines)
    if not kept and not summary:
        return None
    kept += summary
    if final >= 0:
        kept.append(lines[final])
    if summary:
        message = summary[0] if " - " in summary[0] or not first_e else f"{summary[0]} - {first_e}"
        error_type = "TestFailure" if summary[0].startswith("FAILED") else "TestError"
    else:
        message, error_type = f"{kept[0].strip('_ ')} - {first_e}", "TestFailure"
    return Extract("pytest", error_type, one_line(message), fit(kept, max_lines, head=max_lines // 2))


# --- Rust panics (cargo test / cargo run) ----------------------------------------------------

_PANIC = re.compile(r"^thread '.*?' (?:\(\d+\) )?panicked at ", re.M)
_BACKTRACE_FRAME = re.compile(r"^\s+\d+: |^\s+at ")


def _panic(log: Log, max_lines: int) -> Extract | None:
    lines = log.lines
    start = first_index(_PANIC, lines)
    if start < 0:
        return None
    message = lines[start]
    kept = [lines[start]]
    if message.endswith(":") and start + 1 < len(lines):  # Rust >= 1.73 puts the payload on the next line
        message = f"{message} {lines[start + 1].strip()}"
        kept.append(lines[start + 1])
    frames = [line for line in lines[start + 2 : start + 60] if _BACKTRACE_FRAME.match(line)][:16]
    kept += frames
    tail = [line for line in lines[start + 2 :] if line.startswith(("test result:", "error: test failed", "    tests"))]
    kept += tail[:10]
    return Extract("cargo", "Panic", one_line(message), fit(kept, max_lines, head=max_lines // 2))


RULES: tuple[Rule, ...] = (
    Rule("pytest", re.compile(r"^={3,} (?:FAILURES|ERRORS|short test summary info) ={3,}$", re.M), _pytest),
    Rule(
        "cargo",
        re.compile(r"^error\[E\d+\]|^error: could not compile|^\s+--> \S+\.rs:\d+:\d+", re.M),
        _blocks("cargo", _RUSTC),
    ),
    Rule("cargo", _PANIC, _panic),
    Rule("gcc", re.compile(_GCC.anchor.pattern, re.M), _blocks("gcc", _GCC)),
    Rule(
        "gcc",
        re.compile(r"undefined reference to|collect2: error: |linker command failed|ld: cannot find", re.M),
        _blocks("gcc", _LD),
    ),
    Rule("go", re.compile(r"^# \S+\n[^\s:]+\.go:\d+:\d+: ", re.M), _blocks("go", _GO)),
    Rule("tsc", re.compile(_TSC.anchor.pattern, re.M), _blocks("tsc", _TSC)),
    Rule("mypy", re.compile(_MYPY.anchor.pattern, re.M), _blocks("mypy", _MYPY)),
    Rule("python", re.compile(r"^\s*Traceback \(most recent call last\):$|" + _PY_SYNTAX.pattern, re.M), _python),
    Rule("node", re.compile(r"^(?:Uncaught )?(?:[A-Z]\w*(?:Error|Exception)|Error)\b.*\n\s+at \S", re.M), _node),
    Rule("npm", re.compile(_NPM_LINE.pattern, re.M), _blocks("npm", _NPM)),
    Rule("make", re.compile(_MAKE.anchor.pattern, re.M), _blocks("make", _MAKE)),
)
