"""Build and CI output as lines: cleaning, bounding, and the shapes the extractors share.

`clean_lines` turns raw output (ANSI colours, carriage-return progress redraws, very long lines) into
what a terminal would show; `fit` bounds kept lines by count and bytes; `Extract` is what an extractor
returns; `Log`/`Rule` are the inputs and table rows of `agent.capture.buildlog`.
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
SCAN_LINE_CHARS = 4_000
GAP = "…"


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
        line = line[:SCAN_LINE_CHARS]  # the loop below is per character: bound it
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
    lines = [line[:SCAN_LINE_CHARS].rstrip() for line in raw_lines]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def clip(line: str, limit: int) -> str:
    return line if len(line) <= limit else line[: limit - 1] + GAP


def fit(lines: Sequence[str], max_lines: int, head: int) -> tuple[str, ...]:
    """Bound `lines` to `max_lines` and `MAX_BYTES`, keeping up to `head` first lines and the rest from the end."""
    kept = [clip(line, MAX_LINE_CHARS) for line in lines]
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
    return (*first, f"{GAP} {omitted} lines omitted {GAP}", *reversed(last))


# --- the log and shared helpers -----------------------------------------------------------------


@dataclass(frozen=True)
class Log:
    lines: Sequence[str]
    text: str

    @classmethod
    def of(cls, lines: Sequence[str]) -> Log:
        return cls(lines, "\n".join(lines))


Extractor = Callable[[Log, int], Extract | None]


@dataclass(frozen=True)
class Rule:
    tool: str
    detect: re.Pattern[str]
    """Searched once over the whole cleaned text; the extractor runs only when it occurs. Character classes
    in it must exclude `\n` (`[^:\n]*`, not `[^:]*`), or a search is quadratic in the number of lines."""
    extract: Extractor


def first_index(pattern: re.Pattern[str], lines: Sequence[str], start: int = 0) -> int:
    for i in range(start, len(lines)):
        if pattern.search(lines[i]):
            return i
    return -1


def last_index(pattern: re.Pattern[str], lines: Sequence[str]) -> int:
    for i in range(len(lines) - 1, -1, -1):
        if pattern.search(lines[i]):
            return i
    return -1


def first_match(pattern: re.Pattern[str], lines: Sequence[str]) -> tuple[int, re.Match[str] | None]:
    for i, line in enumerate(lines):
        if match := pattern.search(line):
            return i, match
    return -1, None


def dedent(lines: Sequence[str]) -> list[str]:
    indents = [len(line) - len(line.lstrip()) for line in lines if line.strip()]
    cut = min(indents, default=0)
    return [line[cut:] for line in lines]


def one_line(line: str) -> str:
    return clip(" ".join(line.split()), MAX_MESSAGE_CHARS)
