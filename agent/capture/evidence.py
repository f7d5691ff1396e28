"""The lines that carry the answer, out of long logs and tool outputs.

One extractor for everything errlearn reads as evidence: `errlearn run` feeds it a failed command's
output, the eval's incident loaders feed it recorded `kubectl` / log / metrics outputs. It keeps, in
order of the text:

- kubectl describe and events: `Reason:`, `Message:`, `State:` / `Last State:`, `Exit Code:`, and the
  `Events:` table rows that are not `Normal` routine (Warning rows first);
- the `Caused by:` chain of a Java/Python/Rust error, to its innermost cause;
- exit codes (`exit code: 137`, `exited with code 1`, `returned a non-zero code: 2`);
- error, fatal and warning lines;

then, when none of those is found, what `buildlog.extract_errors` picks (its tool table knows
compilers, test runners, pip, npm and Docker builds). Linear in the input; the text is cleaned once
(ANSI codes, `\\r` progress) by the same `clean_lines` the build-log extractor uses.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from agent.capture.buildlog import Extract, clean_lines, extract_errors

MAX_LINE_CHARS = 300
"""A kept line is clipped here: evidence is read by people and small models, not diffed."""

_KUBE_FIELD = re.compile(
    r"^\s*(?:Reason|Message|State|Last State|Exit Code|Status|Conditions?|Error|Warning|Node-Selectors|"
    r"Requests|Limits|Image|Ready|Restart Count)\s*:\s*(?!<none>)\S",
)
_KUBE_ROUTINE_FIELD = re.compile(r"^\s*(?:Status|Ready|State|Image|Restart Count)\s*:\s*(?:Running|True|0|Succeeded)\b")
_EVENTS_HEADER = re.compile(r"^\s*Events:\s*$|^\s*(?:LAST SEEN|Type)\s+(?:TYPE|Reason)\b")
_EVENT_ROW = re.compile(r"^\s*(?:\S+\s+)?(Warning|Normal)\s+(\w+)\s+")
_CAUSED_BY = re.compile(r"^\s*(?:Caused by|The above exception was the direct cause)[:\s]", re.IGNORECASE)
_EXIT = re.compile(
    r"exit(?:ed)?(?: with)? (?:code|status)[:= ]*-?\d+|returned a non-zero (?:code|exit status)|"
    r"\bExit Code:\s*\d+|\bcode=exited, status=\d+",
    re.IGNORECASE,
)
_ERRORISH = re.compile(
    r"\b(?:error|err!|fatal|panic(?:ked)?|exception|traceback|fail(?:ed|ure|ing)?|killed|oomkilled|crash\w*|"
    r"back-?off|refused|denied|forbidden|unauthori[sz]ed|timed? ?out|deadlock|expired|invalid|missing|"
    r"not found|no such|cannot|can't|unable|unavailable|insufficient|exceeded|evicted|unhealthy|"
    r"mismatch|partition(?:ed)?|conflict|violat\w+|rejected|aborted|segfault|oom|out of memory|does not exist|"
    r"unused|is closed|undefined|didn't match|unbound|not ready|pending)\b|[a-z](?:Error|Exception|Killed|BackOff)\b|"
    r"\bFailed[A-Z]\w*",
    re.IGNORECASE,
)
_WARNISH = re.compile(r"\b(?:warn(?:ing)?|deprecated|retry(?:ing)?|slow|degraded|pending)\b", re.IGNORECASE)
_ROUTINE = re.compile(
    r"\b(?:0 errors?|no errors?|errors?=0|error_count=0|without errors?)\b|\berrors?\"?\s*[:=]\s*(?:null|none|\[\]|\{\}|\"\")",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Evidence:
    """What an output shows, bounded."""

    lines: tuple[str, ...]
    """The deciding lines in text order (at most `max_lines`)."""
    headline: str
    """The single most telling line: the innermost cause, else the first error line, else the first line."""
    exit_code: int | None = None


def _clip(line: str) -> str:
    line = line.strip()
    return line if len(line) <= MAX_LINE_CHARS else line[: MAX_LINE_CHARS - 1] + "…"


def _event_lines(lines: Sequence[str], start: int) -> list[int]:
    """Rows of a kubectl `Events:` table: Warning rows (and Normal rows with a failure word)."""
    out: list[int] = []
    for i in range(start, len(lines)):
        m = _EVENT_ROW.match(lines[i])
        if m is None:
            if out and not lines[i].startswith((" ", "\t")):
                break
            continue
        if m.group(1) == "Warning" or _ERRORISH.search(lines[i]):
            out.append(i)
    return out


def _score(line: str) -> int:
    """Higher is more telling: a cause beats an error line beats a warning."""
    if _CAUSED_BY.match(line):
        return 4
    if _ERRORISH.search(line) and not _ROUTINE.search(line):
        return 3
    if _EXIT.search(line):
        return 2
    if _WARNISH.search(line):
        return 1
    return 0


def extract_evidence(output: str, *, max_lines: int = 24) -> Evidence:
    """The deciding lines of a log or tool output (see the module docstring).

    Args:
        output: any text: a command's output, a `kubectl describe`, an application log.
        max_lines: most lines kept (at least 4); error lines and causes win over warnings when cut.
    """
    if max_lines < 4:
        raise ValueError("max_lines must be at least 4")
    lines = [line for line in clean_lines(output) if line.strip()]
    picked: dict[int, int] = {}  # line index -> rank
    for i, line in enumerate(lines):
        if _KUBE_FIELD.match(line) and not _KUBE_ROUTINE_FIELD.match(line):
            picked[i] = 3 if _ERRORISH.search(line) else 2
        elif _EVENTS_HEADER.match(line):
            for j in _event_lines(lines, i + 1):
                picked[j] = 3
        else:
            rank = _score(line)
            if rank:
                picked[i] = rank
    exit_code = _exit_code(lines)
    if not picked:
        found = extract_errors(output, max_lines=max(8, max_lines))
        kept = tuple(_clip(x) for x in found.lines if x.strip())[:max_lines]
        return Evidence(kept, _clip(found.message) if found.message else (kept[0] if kept else ""), exit_code)
    order = sorted(picked, key=lambda i: (-picked[i], i))[:max_lines]
    kept_idx = sorted(order)
    kept = tuple(dict.fromkeys(_clip(lines[i]) for i in kept_idx))
    causes = [i for i in kept_idx if _CAUSED_BY.match(lines[i])]
    if causes:
        headline = _clip(lines[causes[-1]])  # the innermost cause says why
    else:
        best = max(kept_idx, key=lambda i: (picked[i], -i))
        headline = _clip(lines[best])
    return Evidence(kept, headline, exit_code)


_EXIT_NUMBER = re.compile(r"(?:code|status)[:= ]*(-?\d+)|Exit Code:\s*(\d+)", re.IGNORECASE)


def _exit_code(lines: Sequence[str]) -> int | None:
    for line in reversed(lines):
        if _EXIT.search(line):
            m = _EXIT_NUMBER.search(line)
            if m:
                return int(m.group(1) or m.group(2))
    return None


def has_failure_signal(text: str) -> bool:
    """Whether the text says something failed (an error word, a non-zero exit), not just routine lines."""
    for line in text.splitlines():
        if _ERRORISH.search(line) and not _ROUTINE.search(line):
            return True
        m = _EXIT_NUMBER.search(line) if _EXIT.search(line) else None
        if m and (m.group(1) or m.group(2)) not in ("0", None):
            return True
    return False


def command_errors(output: str, *, max_lines: int = 60) -> Extract:
    """What `errlearn run` reports for a failed command: the tool table's match, and when no tool was
    recognised (`generic`), the lines and headline of `extract_evidence` (kubectl fields, the `Caused by`
    chain, exit codes), which a bare tail of the output would miss."""
    found = extract_errors(output, max_lines=max_lines)
    if found.tool != "generic":
        return found
    ev = extract_evidence(output, max_lines=min(max_lines, 40))
    if not ev.lines:
        return found
    message = ev.headline or found.message
    type_found = _TYPE_WORD.search(message)
    error_type = type_found.group(0) if type_found else found.error_type
    return Extract("generic", error_type, message, ev.lines, found.step)


_TYPE_WORD = re.compile(r"\b[A-Z][A-Za-z0-9]*(?:Error|Exception|Failure|Failed|BackOff|Killed)\b")
