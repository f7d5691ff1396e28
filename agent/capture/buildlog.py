"""Pick the relevant error lines out of build and CI output.

Table-driven: `_RULES` holds one small extractor per tool, most specific first. The first rule whose
`detect` pattern occurs in the (cleaned) output and whose extractor finds an error wins; the generic
rule always does. Wrappers that run other tools (Docker, pip) extract their step's output with the
same table, so a compiler error inside `docker build` is reported as precisely as a bare one.

Everything is linear in the size of the output: the text is cleaned once (ANSI codes stripped,
carriage-return progress lines reduced to what a terminal would show, very long lines clipped), each
rule's `detect` is one regex search over the whole text, and extractors walk the lines at most once.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

MAX_LINE_CHARS = 1_000
"""A kept line longer than this is clipped (a minified bundle on one line tells nothing more)."""
MAX_BYTES = 8 * 1024
"""Most UTF-8 bytes of all kept lines together."""
MAX_MESSAGE_CHARS = 500
MAX_SCAN_CHARS = 2_000_000
"""Only this much of the end of the output is analysed (as much as `errlearn run` keeps by default)."""
_SCAN_LINE_CHARS = 4_000
_GAP = "…"


@dataclass(frozen=True)
class Extract:
    """The error found in one command's output."""

    tool: str
    """Which extractor matched: docker, python, gcc, cargo, npm, node, pip, make, pytest, mypy, tsc, go, generic."""
    error_type: str
    """Short type for grouping, e.g. `DockerBuildError`, `CompileError`, `ModuleNotFoundError`."""
    message: str
    """One line: the most specific error line (ids and paths kept; the server masks them)."""
    lines: tuple[str, ...]
    """The relevant lines in order: error lines and a little context, bounded."""
    step: str | None = None
    """The failing Docker step, e.g. `#8 [builder 3/7] RUN pip install -r requirements.txt`."""


# --- cleaning ----------------------------------------------------------------------------------

_ANSI = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")


def _overwrite(line: str) -> str:
    """What a terminal shows for `line`: text after the last carriage return, backspaces applied."""
    end = len(line)
    while "\r" in line:  # the last segment that is not blank (a CRLF or `\r\x1b[K` leaves an empty one)
        cut = line.rfind("\r", 0, end)
        if cut < 0 or line[cut + 1 : end].strip():
            line = line[cut + 1 : end]
            break
        end = cut
    if "\b" in line:
        line = line[:_SCAN_LINE_CHARS]  # the loop below is per character: bound it
        out: list[str] = []
        pos = 0
        for ch in line:
            if ch == "\b":
                pos = max(pos - 1, 0)
            elif pos < len(out):
                out[pos] = ch
                pos += 1
            else:
                out.append(ch)
                pos += 1
        line = "".join(out)
    return line


def clean_lines(output: str) -> list[str]:
    """Split `output` into display lines: no ANSI codes, no progress redraws, no trailing blanks."""
    text = output
    if len(text) > MAX_SCAN_CHARS:
        text = text[-MAX_SCAN_CHARS:]
        text = text[text.find("\n") + 1 :]  # the first line is cut: drop it
    if "\x1b" in text:
        text = _ANSI.sub("", text)
    raw_lines = text.split("\n")
    if "\r" in text or "\b" in text:
        raw_lines = [_overwrite(line) if "\r" in line or "\b" in line else line for line in raw_lines]
    lines = [line[:_SCAN_LINE_CHARS].rstrip() for line in raw_lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def _clip(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1] + _GAP


def _fit(lines: Sequence[str], max_lines: int, head: int) -> tuple[str, ...]:
    """Bound `lines` to `max_lines` and `MAX_BYTES`, keeping up to `head` first lines and the rest from the end."""
    kept = [_clip(line, MAX_LINE_CHARS) for line in lines]
    while kept and not kept[-1].strip():
        kept.pop()
    sizes = [len(line.encode()) + 1 for line in kept]
    if len(kept) <= max_lines and sum(sizes) <= MAX_BYTES:
        return tuple(kept)
    room_lines, room_bytes = max_lines - 1, MAX_BYTES - 40  # one line and some bytes for the marker
    first: list[str] = []
    used = 0
    for line, size in zip(kept[:head], sizes[:head], strict=True):
        if len(first) >= room_lines - 1 or used + size > room_bytes // 2:
            break
        first.append(line)
        used += size
    last: list[str] = []
    for i in range(len(kept) - 1, len(first) - 1, -1):
        if len(first) + len(last) >= room_lines or used + sizes[i] > room_bytes:
            break
        last.append(kept[i])
        used += sizes[i]
    omitted = len(kept) - len(first) - len(last)
    return (*first, f"{_GAP} {omitted} lines omitted {_GAP}", *reversed(last))


# --- the log and shared helpers -----------------------------------------------------------------


@dataclass(frozen=True)
class _Log:
    lines: Sequence[str]
    text: str

    @classmethod
    def of(cls, lines: Sequence[str]) -> _Log:
        return cls(lines, "\n".join(lines))


Extractor = Callable[[_Log, int], Extract | None]


@dataclass(frozen=True)
class _Rule:
    tool: str
    detect: re.Pattern[str]
    """Searched once over the whole cleaned text; the extractor runs only when it occurs. Character classes
    in it must exclude `\n` (`[^:\n]*`, not `[^:]*`), or a search is quadratic in the number of lines."""
    extract: Extractor


def _first(pattern: re.Pattern[str], lines: Sequence[str], start: int = 0) -> int:
    for i in range(start, len(lines)):
        if pattern.search(lines[i]):
            return i
    return -1


def _last(pattern: re.Pattern[str], lines: Sequence[str]) -> int:
    for i in range(len(lines) - 1, -1, -1):
        if pattern.search(lines[i]):
            return i
    return -1


def _first_match(pattern: re.Pattern[str], lines: Sequence[str]) -> tuple[int, re.Match[str] | None]:
    for i, line in enumerate(lines):
        if match := pattern.search(line):
            return i, match
    return -1, None


def _dedent(lines: Sequence[str]) -> list[str]:
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return [line[cut:] for line in lines]


def _message(line: str) -> str:
    return _clip(" ".join(line.split()), MAX_MESSAGE_CHARS)


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
    def extract(log: _Log, max_lines: int) -> Extract | None:
        lines = log.lines
        start = _first(spec.anchor, lines)
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
            preferred = _first(spec.prefer, kept)
            chosen = kept[preferred] if preferred >= 0 else chosen
        return Extract(tool, error_type, _message(chosen), _fit(kept, max_lines, spec.head))

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


def _python(log: _Log, max_lines: int) -> Extract | None:
    lines = log.lines
    start = _last(_TB_START, lines)
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
        prev = _last(_TB_START, lines[:j])
        if prev < 0:
            break
        blocks.insert(0, lines[prev : j + 1])
        cursor = prev
    kept = _dedent([line for block in blocks for line in block])
    return Extract("python", error_type, _message(exc_line), _fit(kept, max_lines, head=4))


def _syntax_error(lines: Sequence[str], max_lines: int) -> Extract | None:
    end, match = _first_match(_PY_SYNTAX, lines)
    if match is None:
        return None
    start = next((j for j in range(end - 1, max(end - 6, -1), -1) if _PY_FILE.match(lines[j])), end)
    kept = _dedent(lines[start : end + 1])
    return Extract("python", match.group("type"), _message(lines[end]), _fit(kept, max_lines, head=4))


# --- Node.js uncaught exceptions --------------------------------------------------------------

_JS_ERR = re.compile(r"^(?:Uncaught )?(?P<type>[A-Z]\w*(?:Error|Exception)|Error)\b(?::.*)?(?: \{)?$")
_JS_AT = re.compile(r"^\s+at \S")
_JS_WHERE = re.compile(r"^(?:node:)?\S+:\d+$")


def _node(log: _Log, max_lines: int) -> Extract | None:
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
    return Extract("node", match.group("type"), _message(message), _fit(lines[top:end], max_lines, head=20))


# --- pytest ----------------------------------------------------------------------------------

_PT_HEADER = re.compile(r"^_{3,} (?P<name>.+?) _{3,}$")
_PT_SECTION = re.compile(r"^={3,} (?:FAILURES|ERRORS) ={3,}$")
_PT_DETAIL = re.compile(r"^(?:>|E |\S+:\d+: \w)")
_PT_SUMMARY = re.compile(r"^(?:FAILED|ERROR) \S")
_PT_FINAL = re.compile(r"^={3,} .*\b(?:failed|errors?)\b.* in [\d.]+s")


def _pytest(log: _Log, max_lines: int) -> Extract | None:
    lines = log.lines
    section = _first(_PT_SECTION, lines)
    kept: list[str] = []
    first_e = ""
    if section >= 0:
        header = _first(_PT_HEADER, lines, section + 1)
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
    final = _last(_PT_FINAL, lines)
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
    return Extract("pytest", error_type, _message(message), _fit(kept, max_lines, head=max_lines // 2))


# --- Rust panics (cargo test / cargo run) ----------------------------------------------------

_PANIC = re.compile(r"^thread '.*?' (?:\(\d+\) )?panicked at ", re.M)
_BACKTRACE_FRAME = re.compile(r"^\s+\d+: |^\s+at ")


def _panic(log: _Log, max_lines: int) -> Extract | None:
    lines = log.lines
    start = _first(_PANIC, lines)
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
    return Extract("cargo", "Panic", _message(message), _fit(kept, max_lines, head=max_lines // 2))


# --- wrappers: pip and Docker run other tools -------------------------------------------------

_PIP_INNER_START = re.compile(r"╰─> \[\d+ lines? of output\]")
_PIP_INNER_END = re.compile(r"^\s*\[end of output\]")
_PIP_ERROR = re.compile(r"^\s*(?:ERROR: |error: |\u00d7 )")  # U+00D7 opens a pip error box
_PIP_PREFER = (  # in this order: the short "no matching" line beats the long list of versions
    re.compile(r"^ERROR: No matching distribution found"),
    re.compile(r"^ERROR: (?!Could not find a version)"),
    _PIP_ERROR,
)


def _pip(log: _Log, max_lines: int) -> Extract | None:
    lines = log.lines
    start = _first(_PIP_ERROR, lines)
    if start < 0:
        return None
    inner: Extract | None = None
    inner_from = _first(_PIP_INNER_START, lines, start)
    inner_to = _first(_PIP_INNER_END, lines, inner_from) if inner_from >= 0 else -1
    if inner_from >= 0 and inner_to > inner_from:
        inner = _best(_Log.of(_dedent(lines[inner_from + 1 : inner_to])), max_lines - 12, skip=("pip", "docker"))
        kept = [*lines[start : inner_from + 1], *inner.lines, *lines[inner_to:]]
    else:
        kept = list(lines[start:])
    kept = [line for line in kept if not line.lstrip().startswith("[notice]")]  # "a new pip is available"
    message = kept[0]
    if inner is not None and inner.message:
        message = inner.message
    else:
        for pattern in _PIP_PREFER:
            found = _first(pattern, kept)
            if found >= 0:
                message = kept[found]
                break
    return Extract("pip", "PipInstallError", _message(message), _fit(kept, max_lines, head=12))


_BK_STEP = re.compile(r"^#(?P<id>\d+) \[(?P<name>[^\]]+)\] ")
_BK_ERROR = re.compile(r"^#(?P<id>\d+) ERROR: ")
_BK_PREFIX = re.compile(r"^#\d+ (?:\d+\.\d+ ?)?")
_BK_STATUS = re.compile(r"^#\d+ (?:DONE [\d.]+s|CACHED|CANCELED|\.\.\.)$")
_BK_TTY_STEP = re.compile(r"^\s*=> ERROR (?P<step>\[[^\]]+\] .*?)(?:\s+[\d.]+s)?$")
_BK_SUMMARY = re.compile(r"^ > (?P<step>\[[^\]]+\] .*):$")
_BK_TIME = re.compile(r"^\d+\.\d+ ?")
_BK_FINAL = re.compile(r"^(?:ERROR|error): (?:failed to build: )?failed to solve: ")
_DOCKERFILE_LINES = re.compile(r"^Dockerfile\S*:\d+$|^\s*\d+ \| >>> ")
_LEGACY_STEP = re.compile(r"^Step \d+/\d+ : ")
_LEGACY_ERROR = re.compile(r"^The command '.*' returned a non-zero code: \d+|^ERROR: Service '.*' failed to build")
_LEGACY_NOISE = re.compile(r"^ ---> |^Removing intermediate container ")


def _buildkit_step(lines: Sequence[str]) -> tuple[str | None, list[str], list[str]]:
    """The failing step's header, its own output lines, and its `#N ERROR:` line."""
    header: str | None = None
    output: list[str] = []
    err, err_match = _first_match(_BK_ERROR, lines)
    if err_match is not None:
        vertex = f"#{err_match.group('id')} "
        for line in lines[:err]:
            if not line.startswith(vertex):
                continue
            if _BK_STEP.match(line):
                header = header or line
            elif not _BK_STATUS.match(line):
                output.append(_BK_PREFIX.sub("", line, count=1))
        return header, output, [lines[err]]
    # TTY progress mode: `=> ERROR [stage 3/7] RUN ...` and a `------ > [stage 3/7] RUN ...:` excerpt.
    _, tty = _first_match(_BK_TTY_STEP, lines)
    summary, summary_match = _first_match(_BK_SUMMARY, lines)
    if tty is not None:
        header = tty.group("step")
    if summary_match is not None:
        header = header or summary_match.group("step")
        for line in lines[summary + 1 :]:
            if line.startswith("------"):
                break
            output.append(_BK_TIME.sub("", line, count=1))
    return header, output, []


def _docker(log: _Log, max_lines: int) -> Extract | None:
    lines = log.lines
    final = _last(_BK_FINAL, lines)
    legacy = _last(_LEGACY_ERROR, lines)
    if final >= 0 or _first(_BK_ERROR, lines) >= 0:
        step, output, errors = _buildkit_step(lines)
        closing = [line for line in lines if _DOCKERFILE_LINES.match(line)][:2]
        closing += [lines[final]] if final >= 0 else []
    elif legacy >= 0:
        at = _last(_LEGACY_STEP, lines[:legacy])
        step = lines[at] if at >= 0 else None
        output = [line for line in lines[at + 1 : legacy] if not _LEGACY_NOISE.match(line)] if at >= 0 else []
        errors, closing = [], [lines[legacy]]
    else:
        return None
    docker_line = (errors or closing or [""])[-1]
    inner = _best(_Log.of(output), max_lines - 8, skip=("docker",)) if output else None
    message = inner.message if inner is not None and inner.message else docker_line
    kept = [*([step] if step else []), *(inner.lines if inner else []), *errors, *closing]
    return Extract("docker", "DockerBuildError", _message(message), _fit(kept, max_lines, head=max_lines - 8), step)


# --- generic fallback ------------------------------------------------------------------------

_GENERIC = re.compile(r"(?i:\berror\b|\bfatal\b)|FAILED|\bpanic:|(?:Error|Exception)\b|^E: ", re.M)
_TYPE_WORD = re.compile(r"\b(?P<type>[A-Z]\w*(?:Error|Exception))\b")
_GENERIC_TAIL = 20


def _generic(log: _Log, max_lines: int) -> Extract:
    lines = log.lines
    tail_from = max(0, len(lines) - _GENERIC_TAIL)
    # finditer over the whole text runs at C speed; line numbers are counted only for the few hits.
    hits: list[int] = []
    line_no, counted_to = 0, 0
    for match in _GENERIC.finditer(log.text):
        line_no += log.text.count("\n", counted_to, match.start())
        counted_to = match.start()
        if hits and hits[-1] == line_no:
            continue
        hits.append(line_no)
        if len(hits) >= max_lines // 2 or line_no >= tail_from:
            break
    message = _message(lines[hits[0]]) if hits else ""
    head = [i for i in hits if i < tail_from]
    kept = [lines[i] for i in head]
    if head and head[-1] < tail_from - 1:
        kept.append(_GAP)
    kept += lines[tail_from:]
    found = _TYPE_WORD.search(message)
    error_type = found.group("type") if found else "CommandFailed"
    return Extract("generic", error_type, message, _fit(kept, max_lines, head=max_lines // 2))


# --- the table -------------------------------------------------------------------------------

_RULES: tuple[_Rule, ...] = (
    _Rule(
        "docker",
        re.compile(r"^#\d+ ERROR: |^(?:ERROR|error): (?:failed to build: )?failed to solve: |^Step \d+/\d+ : ", re.M),
        _docker,
    ),
    _Rule(
        "pip",
        re.compile(
            r"subprocess-exited-with-error|did not run successfully|^ERROR: (?:Could not|No matching distribution"
            r"|Cannot install|Directory .* is not installable|Invalid requirement|Failed (?:building|to build)"
            r"|ResolutionImpossible|Exception:|THESE PACKAGES DO NOT MATCH|Double requirement)",
            re.M,
        ),
        _pip,
    ),
    _Rule("pytest", re.compile(r"^={3,} (?:FAILURES|ERRORS|short test summary info) ={3,}$", re.M), _pytest),
    _Rule(
        "cargo",
        re.compile(r"^error\[E\d+\]|^error: could not compile|^\s+--> \S+\.rs:\d+:\d+", re.M),
        _blocks("cargo", _RUSTC),
    ),
    _Rule("cargo", _PANIC, _panic),
    _Rule("gcc", re.compile(_GCC.anchor.pattern, re.M), _blocks("gcc", _GCC)),
    _Rule(
        "gcc",
        re.compile(r"undefined reference to|collect2: error: |linker command failed|ld: cannot find", re.M),
        _blocks("gcc", _LD),
    ),
    _Rule("go", re.compile(r"^# \S+\n[^\s:]+\.go:\d+:\d+: ", re.M), _blocks("go", _GO)),
    _Rule("tsc", re.compile(_TSC.anchor.pattern, re.M), _blocks("tsc", _TSC)),
    _Rule("mypy", re.compile(_MYPY.anchor.pattern, re.M), _blocks("mypy", _MYPY)),
    _Rule("python", re.compile(r"^\s*Traceback \(most recent call last\):$|" + _PY_SYNTAX.pattern, re.M), _python),
    _Rule("node", re.compile(r"^(?:Uncaught )?(?:[A-Z]\w*(?:Error|Exception)|Error)\b.*\n\s+at \S", re.M), _node),
    _Rule("npm", re.compile(_NPM_LINE.pattern, re.M), _blocks("npm", _NPM)),
    _Rule("make", re.compile(_MAKE.anchor.pattern, re.M), _blocks("make", _MAKE)),
)

# Closing lines worth keeping whatever matched: which target, which script, how many errors.
_TRAILER = re.compile(
    r"^(?:g?make(?:\[\d+\])?: \*\*\* |npm (?:ERR!|error) (?:Lifecycle|command|code)|error: could not compile"
    r"|Found \d+ errors?|ninja: build stopped|collect2: |The command '.*' returned a non-zero code"
    r"|error: test failed|Error: Process completed with exit code)"
)
_TRAILER_WINDOW = 30


def _with_trailer(found: Extract, log: _Log, max_lines: int) -> Extract:
    seen = set(found.lines)
    extra = [line for line in log.lines[-_TRAILER_WINDOW:] if _TRAILER.match(line) and line not in seen]
    if not extra:
        return found
    lines = _fit([*found.lines, *extra[:6]], max_lines, head=max_lines - len(extra[:6]) - 1)
    return Extract(found.tool, found.error_type, found.message, lines, found.step)


def _best(log: _Log, max_lines: int, skip: tuple[str, ...] = ()) -> Extract:
    for rule in _RULES:
        if rule.tool in skip or not rule.detect.search(log.text):
            continue
        found = rule.extract(log, max_lines)
        if found is not None:
            return _with_trailer(found, log, max_lines)
    return _generic(log, max_lines)


def extract_errors(output: str, *, max_lines: int = 60) -> Extract:
    """Find the error in a failed command's output.

    Args:
        output: the command's combined stdout and stderr (ANSI colours and `\\r` progress lines allowed).
        max_lines: most lines to keep in `Extract.lines` (at least 8); they also stay under `MAX_BYTES`.

    Returns:
        The most specific match of the extractor table; `tool="generic"` when no tool was recognised
        (then `message` may be empty if no line looked like an error).
    """
    if max_lines < 8:
        raise ValueError("max_lines must be at least 8")
    return _best(_Log.of(clean_lines(output)), max_lines)
