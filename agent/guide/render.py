"""Render approved entries to the Markdown guide, in the seed's `## ERROR-XXX: Title` format.

Deterministic: the same entries give a byte-identical file (sorted by number, no render timestamps). The
text between the manual markers is kept as it is; the file is replaced atomically (temporary file + rename).
Model-written text is flattened to single lines and defused, so it cannot add headings, close code blocks
or fake the manual markers.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterable
from pathlib import Path

from agent.guide.models import GuideEntry, GuideStatus

TITLE = "Error Prevention Guide"
MANUAL_START = "<!-- errlearn:manual:start -->"
MANUAL_END = "<!-- errlearn:manual:end -->"
GENERATED_NOTE = (
    "<!-- errlearn:generated: entries are rendered from errlearn's database (`errlearn guide render`). "
    "Review them with `errlearn guide` or the /guide API; write by hand only between the manual markers. -->"
)
DEFAULT_MANUAL = (
    "_Hand-written notes go here: errlearn keeps everything between these two markers when it renders the guide._"
)
COMMANDS_NOTE = "_Documentation only: errlearn never runs these commands._"


class GuideFileNotManaged(RuntimeError):
    """The guide file exists but has no manual markers: rendering would overwrite text written by hand."""


# -- text safety ------------------------------------------------------------------------------------------


def _defuse(text: str) -> str:
    # An HTML comment opener could fake (or swallow) the manual markers; show it as text instead.
    return text.replace("<!--", "&lt;!--")


def one_line(text: str) -> str:
    """Whitespace (newlines too) folded to single spaces: the text stays inside its list item or paragraph."""
    return _defuse(" ".join(text.split()))


def code_span(text: str) -> str:
    """`text` as inline code, with a backtick fence longer than any run of backticks inside it."""
    flat = " ".join(text.split())
    longest = max((len(m) for m in re.findall(r"`+", flat)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if flat.startswith("`") or flat.endswith("`") else ""
    return f"{fence}{pad}{flat}{pad}{fence}"


def _code_block(lines: list[str]) -> list[str]:
    body = [line.rstrip().replace(MANUAL_START, "").replace(MANUAL_END, "") for line in lines]
    longest = max((len(m) for line in body for m in re.findall(r"`{3,}|~{3,}", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}bash", *body, fence]


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


# -- rendering --------------------------------------------------------------------------------------------


def heading(entry: GuideEntry) -> str:
    return f"{entry.id}: {one_line(entry.title) or entry.id}"


def render_entry(entry: GuideEntry) -> str:
    """One entry as Markdown: `## ERROR-XXX: Title` and its labelled sections (empty ones left out)."""
    out = [f"## {heading(entry)}", ""]
    if entry.description.strip():
        out += [f"**Description:** {one_line(entry.description)}", ""]
    symptoms = [s for s in entry.symptoms if s.strip()]
    if symptoms:
        out += ["**Symptoms:**", *(f"- {code_span(s)}" for s in symptoms), ""]
    if entry.root_cause.strip():
        out += [f"**Root cause:** {one_line(entry.root_cause)}", ""]
    steps = [one_line(s) for s in entry.solution_steps if s.strip()]
    if steps:
        out += ["**Solution:**", *(f"{i}. {s}" for i, s in enumerate(steps, 1)), ""]
    tips = [one_line(t) for t in entry.prevention_tips if t.strip()]
    if tips:
        out += ["**Prevention:**", *(f"- {t}" for t in tips), ""]
    commands = [line for c in entry.commands for line in c.splitlines() if line.strip()]
    if commands:
        out += ["**Commands:**", "", COMMANDS_NOTE, "", *_code_block(commands), ""]
    return "\n".join(out).rstrip() + "\n"


def render_guide(entries: Iterable[GuideEntry], manual: str = DEFAULT_MANUAL) -> str:
    """The whole guide: title, contents, the manual section, then the approved entries by number.

    Args:
        entries: any entries; only approved ones are rendered.
        manual: the text to keep between the manual markers (without the markers).
    """
    approved = sorted((e for e in entries if e.status is GuideStatus.approved), key=lambda e: e.number)
    out = [f"# {TITLE}", "", GENERATED_NOTE, "", "## Contents", ""]
    if approved:
        out += [f"- [{heading(e)}](#{anchor(heading(e))})" for e in approved]
    else:
        out.append("_No approved entries yet._")
    out += ["", MANUAL_START, manual.strip("\n"), MANUAL_END, ""]
    for e in approved:
        out += [render_entry(e)]
    return "\n".join(out).rstrip() + "\n"


# -- the file ---------------------------------------------------------------------------------------------


def manual_section(text: str) -> str | None:
    """The text between the manual markers (exactly as written), or None when the markers are absent.

    Raises:
        GuideFileNotManaged: a start marker without an end marker (or the other way round).
    """
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.strip() == MANUAL_START]
    ends = [i for i, line in enumerate(lines) if line.strip() == MANUAL_END]
    if not starts and not ends:
        return None
    if not starts or not ends or ends[-1] < starts[0]:
        raise GuideFileNotManaged(
            f"the guide has an unmatched manual marker: it needs both {MANUAL_START} and {MANUAL_END}, in that order"
        )
    return "\n".join(lines[starts[0] + 1 : ends[-1]])


def read_manual(path: Path, *, force: bool = False) -> str:
    """The manual section of the guide at `path` (the default text when the file is absent or empty).

    Raises:
        GuideFileNotManaged: the file has text but no markers, and `force` is False.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return DEFAULT_MANUAL
    if not text.strip():
        return DEFAULT_MANUAL
    found = manual_section(text)
    if found is not None:
        return found
    if force:
        return DEFAULT_MANUAL
    raise GuideFileNotManaged(
        f"{path} has no {MANUAL_START} … {MANUAL_END} section, so rendering would overwrite text written by hand. "
        f"Import its entries with `errlearn guide import {path}`, move other text between the markers, "
        "or render with --force (the old file is kept as .bak)."
    )


def write_atomic(path: Path, text: str) -> bool:
    """Replace `path` with `text` atomically (a reader sees the old or the new file, never half of one).

    Returns False (and writes nothing) when the file already holds exactly this text.
    """
    data = text.encode("utf-8")
    try:
        if path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable; not possible on every platform
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return True
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
    return True


def render_to_file(entries: Iterable[GuideEntry], path: Path, *, force: bool = False) -> bool:
    """Render the guide into `path`, keeping its manual section. True when the file changed.

    Raises:
        GuideFileNotManaged: see `read_manual`.
    """
    manual = read_manual(path, force=force)
    if force and path.exists() and manual_section(path.read_text(encoding="utf-8")) is None:
        write_atomic(path.with_name(path.name + ".bak"), path.read_text(encoding="utf-8"))
    return write_atomic(path, render_guide(entries, manual))
