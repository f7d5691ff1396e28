"""Entries written by people (`## ERROR-XXX: Title` Markdown) turned into guide content.

Parsing the file is `agent.retrieval.knowledge.parse_markdown`'s job; this module maps its sections onto
the entry's fields: lists become items, paragraphs become one item each, fenced code becomes commands.
"""

from __future__ import annotations

import re

from agent.guide.models import EntryContent
from agent.retrieval.knowledge import KnowledgeEntry

_DESCRIPTION = ("Description", "Overview", "Summary", "Meaning")
_SYMPTOMS = ("Symptoms", "Error", "Errors", "Error message")
_CAUSE = ("Root cause", "Cause", "Diagnosis")
_SOLUTION = ("Solution", "Fix", "Resolution", "Mitigation", "Remediation", "Workaround", "Steps")
_PREVENTION = ("Prevention",)
_COMMANDS = ("Commands",)
_FENCE = re.compile(r"^\s*(`{3,}|~{3,})")
_ITEM = re.compile(r"^\s{0,3}(?:[-*+]|\d{1,3}[.)])\s+(.*)$")
_INLINE_CODE = re.compile(r"^`+\s?(.*?)\s?`+$")


def _first(sections: dict[str, str], names: tuple[str, ...]) -> str:
    return next((sections[n] for n in names if sections.get(n, "").strip()), "")


def split_blocks(markdown: str) -> tuple[list[str], list[str]]:
    """(items, code lines): list items and paragraphs as single-line items; lines inside code fences apart."""
    items: list[str] = []
    code: list[str] = []
    current: list[str] = []
    fence = ""

    def flush() -> None:
        if current:
            items.append(" ".join(" ".join(current).split()))
            current.clear()

    for line in markdown.split("\n"):
        m = _FENCE.match(line)
        if fence:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = ""
            else:
                code.append(line.rstrip())
            continue
        if m:
            flush()
            fence = m.group(1)
            continue
        if not line.strip():
            flush()
            continue
        item = _ITEM.match(line)
        if item:
            flush()
            current.append(item.group(1))
        else:
            current.append(line.strip())
    flush()
    return [i for i in items if i], [c for c in code if c.strip()]


def _unquote(item: str) -> str:
    m = _INLINE_CODE.match(item)
    return m.group(1) if m else item


def content_from_markdown(entry: KnowledgeEntry) -> EntryContent:
    """Map a parsed `ERROR-XXX` entry onto guide fields."""
    s = entry.sections
    description_items, _ = split_blocks(_first(s, _DESCRIPTION))
    symptom_items, symptom_code = split_blocks(_first(s, _SYMPTOMS))
    cause_items, _ = split_blocks(_first(s, _CAUSE))
    solution_items, solution_code = split_blocks(_first(s, _SOLUTION))
    prevention_items, _ = split_blocks(_first(s, _PREVENTION))
    command_items, command_code = split_blocks(_first(s, _COMMANDS))
    commands = command_code or solution_code
    if not command_code:
        # Commands written as a list (`- pg_isready`) rather than a code block; the rendered guide's
        # "documentation only" note is ours, not a command.
        commands += [_unquote(c) for c in command_items if not c.startswith("_Documentation only")]
    return EntryContent(
        title=entry.title,
        description=" ".join(description_items),
        symptoms=[_unquote(x) for x in symptom_items] + symptom_code,
        root_cause=" ".join(cause_items),
        solution_steps=solution_items,
        prevention_tips=prevention_items,
        commands=commands,
    )
