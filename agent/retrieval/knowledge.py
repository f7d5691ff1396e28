"""Knowledge-base import: Markdown runbooks, guide entries and notes parsed into `KnowledgeEntry` values.

Pure parsing: no database, no vector store. Three shapes are recognised:

- the error guide: `## ERROR-001: Title` headings (any level) give one entry each, with sections from
  sub-headings or bold labels (`**Solution:**`);
- a runbook: title from the first heading (else front matter `title:`), sections from the next heading
  level (Meaning / Impact / Diagnosis / Mitigation, Symptoms / Prevention, ...);
- anything else: one note.

A file that holds several runbooks (same-level headings, each with its own section headings) gives one
entry per runbook, with `kb_<path>#<anchor>` ids.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tomllib
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Final

import yaml

log = logging.getLogger(__name__)

MAX_TEXT_CHARS: Final = 20_000
"""An entry's stored markdown is cut here: enough for any real runbook, bounded for the database."""
MAX_SECTION_CHARS: Final = 8_000
MAX_FILE_BYTES: Final = 1_000_000
"""Bigger files are skipped: a knowledge file that size is a log or a dump, not a runbook."""
MAX_ID_CHARS: Final = 200
"""The width of the `knowledge_entries.id` column."""
MARKDOWN_SUFFIXES: Final = (".md", ".markdown")
INDEX_FILES: Final = frozenset(
    {"readme", "index", "summary", "changelog", "contributing", "code_of_conduct", "license", "source", "notice"}
)
"""Folder indexes, repository boilerplate and provenance files (plus any `_name.md`, e.g. Hugo's `_index.md`): not entries."""
OVERVIEW: Final = "Overview"
"""Section name for text between an entry's title and its first section."""

_KNOWN_SECTIONS: Final = (
    "Meaning", "Impact", "Diagnosis", "Mitigation", "Symptoms", "Description", "Overview", "Summary",
    "Root cause", "Cause", "Solution", "Fix", "Resolution", "Remediation", "Workaround", "Prevention",
    "Commands", "Troubleshooting", "Investigation", "Recovery", "Rollback", "Verification", "Escalation",
    "Steps", "Context", "Error", "Errors", "Error message", "Notes", "References", "See also", "Severity",
    "Runbook",
)  # fmt: skip
_ALIASES: Final = {
    "root causes": "Root cause", "rootcause": "Root cause", "causes": "Cause", "solutions": "Solution",
    "how to fix": "Solution", "fixes": "Fix", "symptom": "Symptoms", "error messages": "Error message",
    "diagnostics": "Diagnosis", "mitigations": "Mitigation", "note": "Notes", "reference": "References",
    "command": "Commands", "useful commands": "Commands", "preventive measures": "Prevention",
}  # fmt: skip
_CANONICAL: Final = {name.lower(): name for name in _KNOWN_SECTIONS} | _ALIASES
_RUNBOOK_SECTIONS: Final = frozenset(
    {"Meaning", "Impact", "Diagnosis", "Mitigation", "Symptoms", "Root cause", "Cause", "Solution", "Fix",
     "Resolution", "Remediation", "Workaround", "Prevention", "Troubleshooting", "Investigation", "Recovery",
     "Rollback", "Verification", "Escalation", "Runbook"}
)  # fmt: skip
# What an error looks like comes first in the embedding, then why it happens; fixes last: a new error's
# text resembles symptoms and causes, not remedies.
_TIER_WHAT: Final = frozenset({"Meaning", "Description", "Overview", "Summary", "Symptoms", "Error", "Errors",
                               "Error message"})  # fmt: skip
_TIER_WHY: Final = frozenset({"Diagnosis", "Root cause", "Cause", "Troubleshooting", "Investigation"})

_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_SETEXT = re.compile(r"^ {0,3}(={3,}|-{3,})[ \t]*$")
_NOT_PARAGRAPH = re.compile(r"^\s*(?:[-*+>|<]|\d+[.)]\s|$)")
_GUIDE_ID = re.compile(r"^\[?(ERROR-\d{1,9})\]?(?:\s*[:.\-\u2013\u2014]\s*|\s+|$)(.*)$", re.IGNORECASE)
_LABEL = re.compile(r"^ {0,3}([-*+] +)?(\*\*|__)([^*_:\n]{1,60}?)[ \t]*(:[ \t]*\2|\2[ \t]*:|\2)[ \t]*(.*)$")
_ALERT_PREFIX = re.compile(r"^(?:alert|runbook)\s*[:\-\u2013\u2014]\s*(\S+)$", re.IGNORECASE)
_IDENT = re.compile(r"^[A-Za-z][A-Za-z0-9_]{2,99}$")
_CAMEL_HUMP = re.compile(r"[a-z0-9][A-Z]|[A-Z]{2}[a-z]")
_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_SHORTCODE = re.compile(r"\{\{[<%].*?[%>]\}\}", re.S)
_SUMMARY = re.compile(r"<summary>.*?</summary>", re.S | re.I)  # "Full context" toggles: UI chrome, not content
# Real HTML tags only: `<pod>` or `<namespace>` in a command are placeholders worth keeping.
_HTML = re.compile(
    r"</?(?:details|summary|br|p|div|span|img|a|b|i|u|em|strong|code|pre|kbd|sup|sub|table|thead|tbody|tr|td|th"
    r"|ul|ol|li|hr|h[1-6]|blockquote|center|font)\b[^>\n]{0,200}>",
    re.IGNORECASE,
)
_URL = re.compile(r"https?://\S+")
_LINE_MARK = re.compile(r"(?m)^[ \t]*(?:#{1,6}[ \t]+|>[ \t]?|[-*+][ \t]+|\d+[.)][ \t]+)")
_FENCE_LINE = re.compile(r"(?m)^[ \t]*(?:`{3,}|~{3,}).*$")
_TABLE_RULE = re.compile(r"(?m)^[ \t]*\|?[ \t]*:?-{3,}.*$")
_EMPHASIS = re.compile(r"\*\*|__|`")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class KnowledgeEntry:
    """One imported runbook, guide entry or note."""

    id: str
    """`ERROR-001` for guide entries; else `kb_<slug of path>` (+ `#<anchor>` when a file holds several)."""
    title: str
    kind: str
    """`runbook`, `guide` or `note`."""
    sections: dict[str, str] = field(hash=False)
    """Section name (canonical spelling, e.g. `Root cause`) -> its markdown, in document order."""
    text: str
    """The whole entry as markdown, front matter stripped, at most `MAX_TEXT_CHARS`."""
    source: str
    """Path of the file relative to the import root, `/`-separated."""
    alert_name: str | None = None
    """The alert a runbook documents, e.g. `KubePodCrashLooping`, when it can be told."""

    def embedding_text(self, max_chars: int = 2000) -> str:
        """Title, then what the error looks like, then why it happens, then the rest; plain text, bounded.

        Each section gets at most half the budget, so one long section cannot push out all the others.
        """
        if max_chars < 1:
            raise ValueError("max_chars must be positive")
        head = _fold(self.title)
        if self.alert_name:
            for extra in (self.alert_name, _humanize(self.alert_name)):
                if extra.lower() not in head.lower():
                    head += f" - {extra}"
        parts = [_cut(head, max_chars)]
        used = len(parts[0])
        for name in _by_relevance(self.sections):
            body = _plain(self.sections[name])
            room = max_chars - used - 1
            if not body or room < 20:  # a section name with a word or two of text only adds noise
                continue
            piece = _cut(f"{name}: {body}", min(room, max(max_chars // 2, 1)))
            parts.append(piece)
            used += len(piece) + 1
        return "\n".join(parts)[:max_chars]


# -- public functions ------------------------------------------------------------------------------


def parse_markdown(text: str, *, source: str) -> list[KnowledgeEntry]:
    """Parse one Markdown file into entries.

    Args:
        text: The file's content.
        source: Its path relative to the import root; ids of non-guide entries derive from it.

    Raises:
        ValueError: The file names one `ERROR-XXX` id twice.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    front, body = split_front_matter(text)
    if not body.strip():
        return []
    doc = _Doc(body.split("\n"))
    if any(_GUIDE_ID.match(h.text) for h in doc.headings):
        return _guide_entries(doc, source)
    level = _multi_entry_level(doc)
    if level is not None:
        return _multi_entries(doc, level, source)
    return [_single_entry(doc, front, source)]


def load_path(path: Path) -> list[KnowledgeEntry]:
    """Load a Markdown file, or every `*.md` under a folder (index files such as README.md skipped).

    Files that cannot be read or are not UTF-8 are skipped with a warning.

    Raises:
        FileNotFoundError: `path` does not exist.
        ValueError: Two entries share an id; the message names both files.
    """
    path = Path(path)
    if path.is_file():
        files = [(path, path.name)]
    elif path.is_dir():
        files = sorted(((p, p.relative_to(path).as_posix()) for p in _markdown_files(path)), key=lambda f: f[1])
    else:
        raise FileNotFoundError(f"no knowledge file or folder at {path}")
    entries: list[KnowledgeEntry] = []
    seen: dict[str, str] = {}
    for file, rel in files:
        text = _read_text(file)
        if text is None:
            continue
        for entry in parse_markdown(text, source=rel):
            if entry.id in seen:
                raise ValueError(f"duplicate knowledge id {entry.id!r} in {seen[entry.id]} and {rel} (under {path})")
            seen[entry.id] = rel
            entries.append(entry)
    return entries


def split_front_matter(text: str) -> tuple[dict[str, Any], str]:
    """`(front matter, body)`. YAML (`---`) or TOML (`+++`); a block that does not parse as a mapping stays."""
    for fence, parse in (("---", _yaml_mapping), ("+++", _toml_mapping)):
        if not text.startswith(fence + "\n"):
            continue
        end = text.find(f"\n{fence}\n", len(fence))
        if end < 0 and text.endswith(f"\n{fence}"):
            end = len(text) - len(fence) - 1
        if end < 0:
            return {}, text
        data = parse(text[len(fence) + 1 : end])
        return (data, text[end + len(fence) + 2 :]) if data is not None else ({}, text)
    return {}, text


def entry_id_for(source: str, anchor: str | None = None) -> str:
    """`kb_` + a slug of the relative path (`ops/DB Down.md` -> `kb_ops/db-down`), + `#anchor`."""
    path = PurePosixPath(source.replace("\\", "/"))
    parts = [*path.parts[:-1], path.stem if path.suffix.lower() in MARKDOWN_SUFFIXES else path.name]
    slug = "/".join(s for s in (_slug(p) for p in parts) if s) or "entry"
    ident = f"kb_{slug}" + (f"#{anchor}" if anchor else "")
    if len(ident) > MAX_ID_CHARS:  # keep it unique and within the column: a cut plus a hash of the whole
        ident = ident[: MAX_ID_CHARS - 9] + "~" + hashlib.sha1(ident.encode()).hexdigest()[:8]
    return ident


# -- document scanning -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Heading:
    line: int
    last: int
    """Last line of the heading (the underline of a setext heading)."""
    level: int
    text: str


class _Doc:
    """Lines, headings (outside code fences), which lines are code, and where each heading's block ends."""

    def __init__(self, lines: list[str]) -> None:
        self.lines = lines
        self.code = [False] * len(lines)
        self.headings: list[_Heading] = []
        fence = ""
        for i, line in enumerate(lines):
            m = _FENCE.match(line)
            if fence:
                self.code[i] = True
                if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence) and not line.strip(" `~"):
                    fence = ""
            elif m:
                fence, self.code[i] = m.group(1), True
            elif atx := _ATX.match(line):
                self.headings.append(_Heading(i, i, len(atx.group(1)), _clean_inline(atx.group(2) or "")))
            elif (
                (setext := _SETEXT.match(line))
                and i > 0
                and not self.code[i - 1]
                and not _NOT_PARAGRAPH.match(lines[i - 1])
                and not (self.headings and self.headings[-1].last >= i - 1)
            ):
                level = 1 if setext.group(1)[0] == "=" else 2
                self.headings.append(_Heading(i - 1, i, level, _clean_inline(lines[i - 1])))
        self.block_end = self._block_ends()

    def _block_ends(self) -> list[int]:
        """For each heading, the line where the next heading of the same or a higher level starts."""
        ends = [len(self.lines)] * len(self.headings)
        stack: list[int] = []
        for j, h in enumerate(self.headings):
            while stack and self.headings[stack[-1]].level >= h.level:
                ends[stack.pop()] = h.line
            stack.append(j)
        return ends

    def children(self, index: int) -> list[_Heading]:
        end = self.block_end[index]
        return [h for h in self.headings[index + 1 :] if h.line < end]

    def markdown(self, start: int, end: int) -> str:
        return _bound("\n".join(self.lines[start:end]).strip(), MAX_TEXT_CHARS)

    def sections(self, start: int, end: int, *, skip: range = range(0), labels: bool = False) -> dict[str, str]:
        """Split lines [start, end) at the shallowest headings inside (and at bold labels when asked or
        when there are no headings); text before the first section becomes `Overview`."""
        inner = [h for h in self.headings if start <= h.line < end and h.line not in skip]
        level = min((h.level for h in inner), default=0)
        heads = {h.line: h for h in inner if h.level == level}
        labels = labels or not heads
        buckets: dict[str, list[str]] = {}
        current = OVERVIEW
        i = start
        while i < end:
            if i in skip:
                i += 1
                continue
            if i in heads:
                current = _section_name(heads[i].text)
                buckets.setdefault(current, [])
                i = heads[i].last + 1
                continue
            label = _label(self.lines[i]) if labels and not self.code[i] else None
            if label is not None:
                current, rest = label
                buckets.setdefault(current, []).extend([rest] if rest else [])
            else:
                buckets.setdefault(current, []).append(self.lines[i])
            i += 1
        out = {name: _bound("\n".join(body).strip(), MAX_SECTION_CHARS) for name, body in buckets.items()}
        return {name: body for name, body in out.items() if body}


# -- the three shapes ------------------------------------------------------------------------------


def _guide_entries(doc: _Doc, source: str) -> list[KnowledgeEntry]:
    entries: list[KnowledgeEntry] = []
    lines_of: dict[str, int] = {}
    for index, heading in enumerate(doc.headings):
        m = _GUIDE_ID.match(heading.text)
        if not m:
            continue
        ident = m.group(1).upper()
        if ident in lines_of:
            raise ValueError(f"{source}: {ident} appears twice (lines {lines_of[ident] + 1} and {heading.line + 1})")
        lines_of[ident] = heading.line
        end = doc.block_end[index]
        entries.append(
            KnowledgeEntry(
                id=ident,
                title=m.group(2).strip() or ident,
                kind="guide",
                sections=doc.sections(heading.last + 1, end, labels=True),
                text=doc.markdown(heading.line, end),
                source=source,
            )
        )
    return entries


def _multi_entry_level(doc: _Doc) -> int | None:
    """The heading level at which a file holds several entries, or None for a one-entry file.

    Several entries means: at least two headings of that level, none of them a section name, and at least
    two of them with runbook section headings (Symptoms, Diagnosis, Mitigation, ...) of their own. Mere
    `Commands` or `Notes` under each step of a how-to do not make separate entries.
    """
    for level in sorted({h.level for h in doc.headings})[:2]:
        tops = [j for j, h in enumerate(doc.headings) if h.level == level]
        if len(tops) < 2 or any(_is_section(doc.headings[j].text) for j in tops):
            continue
        with_sections = sum(any(_section_name(c.text) in _RUNBOOK_SECTIONS for c in doc.children(j)) for j in tops)
        if with_sections >= 2:
            return level
    return None


def _multi_entries(doc: _Doc, level: int, source: str) -> list[KnowledgeEntry]:
    entries: list[KnowledgeEntry] = []
    anchors: dict[str, int] = {}
    for index, heading in enumerate(doc.headings):
        if heading.level != level:
            continue
        anchor = _slug(heading.text) or "entry"
        n = anchors.get(anchor, 0)
        anchors[anchor] = n + 1
        end = doc.block_end[index]
        sections = doc.sections(heading.last + 1, end)
        alert = _alert_name({}, heading.text, None, sections)
        entries.append(
            KnowledgeEntry(
                id=entry_id_for(source, anchor if n == 0 else f"{anchor}-{n}"),  # GitHub's anchor numbering
                title=heading.text or anchor,
                kind=_kind(sections, alert),
                sections=sections,
                text=doc.markdown(heading.line, end),
                source=source,
                alert_name=alert,
            )
        )
    return entries


def _single_entry(doc: _Doc, front: dict[str, Any], source: str) -> KnowledgeEntry:
    first = doc.headings[0] if doc.headings else None
    title_heading = first if first is not None and first.text and not _is_section(first.text) else None
    skip = range(title_heading.line, title_heading.last + 1) if title_heading else range(0)
    sections = doc.sections(0, len(doc.lines), skip=skip)
    stem = PurePosixPath(source.replace("\\", "/")).stem
    front_title = str(front.get("title") or "").strip()
    heading_text = title_heading.text if title_heading else ""
    alert = _alert_name(front, heading_text, stem, sections)
    if alert and alert == stem and _alert_like(heading_text) and heading_text != stem:
        heading_text = front_title or stem  # the heading names a sibling alert (copied page); trust the file
    title = heading_text or front_title or _humanize(stem.replace("_", " ").replace("-", " ")) or source
    return KnowledgeEntry(
        id=entry_id_for(source),
        title=title,
        kind=_kind(sections, alert),
        sections=sections,
        text=doc.markdown(0, len(doc.lines)),
        source=source,
        alert_name=alert,
    )


def _kind(sections: dict[str, str], alert_name: str | None) -> str:
    return "runbook" if alert_name or _RUNBOOK_SECTIONS.intersection(sections) else "note"


def _alert_name(front: dict[str, Any], heading: str, stem: str | None, sections: dict[str, str]) -> str | None:
    """The alert a runbook documents: front matter `alert:`, else an alert-like file name or title.

    The file name wins over the title when both look like alert names: in real runbook collections the
    title is sometimes copied from a sibling page while the file keeps the alert's name.
    """
    for key in ("alert", "alert_name", "alertname", "alert-name"):
        value = front.get(key)
        if isinstance(value, str) and value.strip():
            return value.strip()
    if m := _ALERT_PREFIX.match(heading):
        return m.group(1) if _IDENT.match(m.group(1)) else None
    runbookish = bool(_RUNBOOK_SECTIONS.intersection(sections))
    if stem and _alert_like(stem):
        names = (heading, str(front.get("title") or ""))
        if _alert_like(heading) or (runbookish and any(_compact(n) == _compact(stem) for n in names)):
            return stem
    if _alert_like(heading):
        return heading
    # A one-word alert (`Watchdog`): only when the file, the title and an alert-style `Meaning` agree.
    if stem and stem == heading and _IDENT.match(stem) and "Meaning" in sections:
        return stem
    return None


# -- files ---------------------------------------------------------------------------------------------


def _markdown_files(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):  # not following links: no loops, nothing outside the root
        dirs[:] = [d for d in dirs if not d.startswith(".") and d != "node_modules"]
        for name in files:
            stem, _, suffix = name.rpartition(".")
            if f".{suffix.lower()}" in MARKDOWN_SUFFIXES and not _is_index_file(stem):
                yield Path(folder) / name


def _is_index_file(stem: str) -> bool:
    return stem.startswith(("_", ".")) or stem.lower() in INDEX_FILES


def _read_text(path: Path) -> str | None:
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            log.warning("skipping knowledge file %s: %d bytes, more than %d", path, size, MAX_FILE_BYTES)
            return None
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        log.warning("skipping unreadable knowledge file %s: %s", path, exc)
        return None
    except UnicodeDecodeError as exc:
        log.warning("skipping knowledge file %s: not UTF-8 (%s)", path, exc.reason)
        return None
    if "\x00" in text:
        log.warning("skipping knowledge file %s: binary content", path)
        return None
    return text


def _yaml_mapping(block: str) -> dict[str, Any] | None:
    try:
        data = yaml.safe_load(block)
    except yaml.YAMLError:
        return None
    if data is None:  # empty block: front matter; comment-only (`# Title`): a document, not front matter
        return None if block.strip() else {}
    return {str(k): v for k, v in data.items()} if isinstance(data, dict) else None


def _toml_mapping(block: str) -> dict[str, Any] | None:
    try:
        return tomllib.loads(block)
    except tomllib.TOMLDecodeError:
        return None


# -- text helpers ------------------------------------------------------------------------------------


def _clean_inline(text: str) -> str:
    text = _SHORTCODE.sub(" ", _LINK.sub(r"\1", text))
    return _fold(_EMPHASIS.sub("", text)).strip("*_ ")


def _section_name(text: str) -> str:
    name = re.sub(r"^\d+[.)]\s*", "", text).rstrip(": ").strip()
    key = _fold(name.replace("-", " ").replace("_", " ")).lower()
    return _CANONICAL.get(key, name)


def _is_section(text: str) -> bool:
    return _section_name(text) in _KNOWN_SECTIONS


def _label(line: str) -> tuple[str, str] | None:
    """`**Solution:** text` -> (`Solution`, `text`). Unknown labels only count alone on their line with a
    colon, so that an inline `**Warning:** ...` stays part of its section."""
    m = _LABEL.match(line)
    if not m:
        return None
    bullet, name, closing, rest = m.group(1), _section_name(m.group(3)), m.group(4), m.group(5).strip()
    if name in _KNOWN_SECTIONS:
        return name, rest
    if ":" in closing and not rest and not bullet:
        return name, ""
    return None


def _by_relevance(sections: dict[str, str]) -> Sequence[str]:
    names = list(sections)
    return sorted(names, key=lambda n: (0 if n in _TIER_WHAT else 1 if n in _TIER_WHY else 2, names.index(n)))


def _plain(markdown: str) -> str:
    text = _FENCE_LINE.sub(" ", markdown)
    text = _TABLE_RULE.sub(" ", text)
    text = _LINK.sub(r"\1", _SHORTCODE.sub(" ", text))
    text = _URL.sub(" ", _HTML.sub(" ", _SUMMARY.sub(" ", text)))
    text = _LINE_MARK.sub("", text)
    return _fold(_EMPHASIS.sub("", text))


def _fold(text: str) -> str:
    return _WS.sub(" ", text).strip()


def _cut(text: str, limit: int) -> str:
    """At most `limit` characters, ending at a word boundary when one is near."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit * 0.6 else cut).rstrip()


def _bound(text: str, limit: int) -> str:
    marker = "\n\n[... truncated]"
    if len(text) <= limit:
        return text
    cut = text[: limit - len(marker)]
    newline = cut.rfind("\n")
    return (cut[:newline] if newline > limit * 0.8 else cut).rstrip() + marker


def _slug(text: str) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")


def _compact(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def _alert_like(text: str) -> bool:
    return bool(_IDENT.match(text) and _CAMEL_HUMP.search(text))


def _humanize(name: str) -> str:
    """`KubePodCrashLooping` -> `Kube Pod Crash Looping`, `CPUThrottlingHigh` -> `CPU Throttling High`."""
    spaced = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", " ", name)
    return _fold(spaced.replace("_", " "))


__all__ = ["KnowledgeEntry", "entry_id_for", "load_path", "parse_markdown", "split_front_matter"]
