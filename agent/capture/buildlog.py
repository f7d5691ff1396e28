"""Pick the relevant error lines out of build and CI output.

Table-driven: `_RULES` holds one small extractor per tool, most specific first (the wrappers here,
the tools in `agent.capture.tool_errors`, the cleaning in `agent.capture.logtext`). The first rule whose
`detect` pattern occurs in the (cleaned) output and whose extractor finds an error wins; the generic
rule always does. Wrappers that run other tools (Docker, pip) extract their step's output with the
same table, so a compiler error inside `docker build` is reported as precisely as a bare one.

Everything is linear in the size of the output: the text is cleaned once (ANSI codes stripped,
carriage-return progress lines reduced to what a terminal would show, very long lines clipped), each
rule's `detect` is one regex search over the whole text, and extractors walk the lines at most once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from agent.capture import tool_errors
from agent.capture.logtext import (
    GAP,
    MAX_BYTES,
    MAX_LINE_CHARS,
    MAX_MESSAGE_CHARS,
    MAX_SCAN_CHARS,
    Extract,
    Log,
    Rule,
    clean_lines,
    dedent,
    first_index,
    first_match,
    fit,
    last_index,
    one_line,
)

__all__ = [
    "MAX_BYTES",
    "MAX_LINE_CHARS",
    "MAX_MESSAGE_CHARS",
    "MAX_SCAN_CHARS",
    "Extract",
    "clean_lines",
    "extract_errors",
]

# --- wrappers: pip and Docker run other tools -------------------------------------------------

_PIP_INNER_START = re.compile(r"╰─> \[\d+ lines? of output\]")
_PIP_INNER_END = re.compile(r"^\s*\[end of output\]")
_PIP_ERROR = re.compile(r"^\s*(?:ERROR: |error: |\u00d7 )")  # U+00D7 opens a pip error box
_PIP_PREFER = (  # in this order: the short "no matching" line beats the long list of versions
    re.compile(r"^ERROR: No matching distribution found"),
    re.compile(r"^ERROR: (?!Could not find a version)"),
    _PIP_ERROR,
)


def _pip(log: Log, max_lines: int) -> Extract | None:
    lines = log.lines
    start = first_index(_PIP_ERROR, lines)
    if start < 0:
        return None
    inner: Extract | None = None
    inner_from = first_index(_PIP_INNER_START, lines, start)
    inner_to = first_index(_PIP_INNER_END, lines, inner_from) if inner_from >= 0 else -1
    if inner_from >= 0 and inner_to > inner_from:
        inner = _best(Log.of(dedent(lines[inner_from + 1 : inner_to])), max_lines - 12, skip=("pip", "docker"))
        kept = [*lines[start : inner_from + 1], *inner.lines, *lines[inner_to:]]
    else:
        kept = list(lines[start:])
    kept = [line for line in kept if not line.lstrip().startswith("[notice]")]  # "a new pip is available"
    message = kept[0]
    if inner is not None and inner.message:
        message = inner.message
    else:
        for pattern in _PIP_PREFER:
            found = first_index(pattern, kept)
            if found >= 0:
                message = kept[found]
                break
    return Extract("pip", "PipInstallError", one_line(message), fit(kept, max_lines, head=12))


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
    err, err_match = first_match(_BK_ERROR, lines)
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
    _, tty = first_match(_BK_TTY_STEP, lines)
    summary, summary_match = first_match(_BK_SUMMARY, lines)
    if tty is not None:
        header = tty.group("step")
    if summary_match is not None:
        header = header or summary_match.group("step")
        for line in lines[summary + 1 :]:
            if line.startswith("------"):
                break
            output.append(_BK_TIME.sub("", line, count=1))
    return header, output, []


def _docker(log: Log, max_lines: int) -> Extract | None:
    lines = log.lines
    final = last_index(_BK_FINAL, lines)
    legacy = last_index(_LEGACY_ERROR, lines)
    if final >= 0 or first_index(_BK_ERROR, lines) >= 0:
        step, output, errors = _buildkit_step(lines)
        closing = [line for line in lines if _DOCKERFILE_LINES.match(line)][:2]
        closing += [lines[final]] if final >= 0 else []
    elif legacy >= 0:
        at = last_index(_LEGACY_STEP, lines[:legacy])
        step = lines[at] if at >= 0 else None
        output = [line for line in lines[at + 1 : legacy] if not _LEGACY_NOISE.match(line)] if at >= 0 else []
        errors, closing = [], [lines[legacy]]
    else:
        return None
    docker_line = (errors or closing or [""])[-1]
    inner = _best(Log.of(output), max_lines - 8, skip=("docker",)) if output else None
    message = inner.message if inner is not None and inner.message else docker_line
    kept = [*([step] if step else []), *(inner.lines if inner else []), *errors, *closing]
    return Extract("docker", "DockerBuildError", one_line(message), fit(kept, max_lines, head=max_lines - 8), step)


# --- generic fallback ------------------------------------------------------------------------

_GENERIC = re.compile(r"(?i:\berror\b|\bfatal\b)|FAILED|\bpanic:|(?:Error|Exception)\b|^E: ", re.M)
_TYPE_WORD = re.compile(r"\b(?P<type>[A-Z]\w*(?:Error|Exception))\b")
_GENERIC_TAIL = 20


def _generic(log: Log, max_lines: int) -> Extract:
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
    message = one_line(lines[hits[0]]) if hits else ""
    head = [i for i in hits if i < tail_from]
    kept = [lines[i] for i in head]
    if head and head[-1] < tail_from - 1:
        kept.append(GAP)
    kept += lines[tail_from:]
    found = _TYPE_WORD.search(message)
    error_type = found.group("type") if found else "CommandFailed"
    return Extract("generic", error_type, message, fit(kept, max_lines, head=max_lines // 2))


# --- the table -------------------------------------------------------------------------------

_RULES: tuple[Rule, ...] = (
    Rule(
        "docker",
        re.compile(r"^#\d+ ERROR: |^(?:ERROR|error): (?:failed to build: )?failed to solve: |^Step \d+/\d+ : ", re.M),
        _docker,
    ),
    Rule(
        "pip",
        re.compile(
            r"subprocess-exited-with-error|did not run successfully|^ERROR: (?:Could not|No matching distribution"
            r"|Cannot install|Directory .* is not installable|Invalid requirement|Failed (?:building|to build)"
            r"|ResolutionImpossible|Exception:|THESE PACKAGES DO NOT MATCH|Double requirement)",
            re.M,
        ),
        _pip,
    ),
    *tool_errors.RULES,
)

# Closing lines worth keeping whatever matched: which target, which script, how many errors.
_TRAILER = re.compile(
    r"^(?:g?make(?:\[\d+\])?: \*\*\* |npm (?:ERR!|error) (?:Lifecycle|command|code)|error: could not compile"
    r"|Found \d+ errors?|ninja: build stopped|collect2: |The command '.*' returned a non-zero code"
    r"|error: test failed|Error: Process completed with exit code)"
)
_TRAILER_WINDOW = 30


def _with_trailer(found: Extract, log: Log, max_lines: int) -> Extract:
    seen = set(found.lines)
    extra = [line for line in log.lines[-_TRAILER_WINDOW:] if _TRAILER.match(line) and line not in seen]
    if not extra:
        return found
    lines = fit([*found.lines, *extra[:6]], max_lines, head=max_lines - len(extra[:6]) - 1)
    return Extract(found.tool, found.error_type, found.message, lines, found.step)


def _best(log: Log, max_lines: int, skip: tuple[str, ...] = ()) -> Extract:
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
    return _best(Log.of(clean_lines(output)), max_lines)
