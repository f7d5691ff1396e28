"""What the lexical side of retrieval sees of an error: its terms and its weighted frames.

Pure functions, no I/O. One document per pattern (and one per query) is made of

- **terms** for BM25: words of the error type, of the message template and of the in-app frames
  (identifiers split at dots and camel humps, lower-cased), plus each frame and the error type as
  one whole token (`f:org.x.NumberUtils.createInteger`, `t:java.lang.NumberFormatException`), so
  an exact shared frame or type counts as a rare token of its own, and each method of the project
  as one token too (`m:testDrawWithNullInfo`: one test method inherited by many test classes);
- **frames** for the trace similarity (the TraceSim / Lerch family): each frame of the stack with a
  base weight from its position (1 / (1 + distance from the top)) and its kind: code of the project
  1, its tests 0.3, libraries and test harness (JDK, JUnit, reflection) 0.1. The rarity of a frame
  (its idf over the indexed patterns) is applied at query time by the index, so no weight is tuned
  for one project.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from agent.domain import Frame
from agent.ingest.stacktrace import is_test_frame, parse_stack
from agent.retrieval.text import short_frame

MAX_FRAMES: Final = 32
"""Frames read from the top of a stack: deeper ones are entry points and runner machinery."""
APP_WEIGHT: Final = 1.0
TEST_WEIGHT: Final = 0.3
LIBRARY_WEIGHT: Final = 0.1
FRAME_PREFIX: Final = "f:"
TYPE_PREFIX: Final = "t:"
METHOD_PREFIX: Final = "m:"

_WORD = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")
_PLACEHOLDER = re.compile(r"<[A-Z_]+>")
_STOP: Final = frozenset({"at", "the", "a", "an", "of", "to", "in", "is", "and", "or", "for", "on", "be", "was"})


@dataclass(frozen=True)
class LexicalDoc:
    """The lexical view of one pattern or query."""

    terms: tuple[str, ...]
    frames: Mapping[str, float] = field(default_factory=dict)
    """Frame (short `module.function`) -> base weight (position x kind); the first occurrence wins."""
    own: frozenset[str] = frozenset()
    """Those of `frames` that are the project's code or tests (not libraries or the test harness)."""


def words(text: str) -> list[str]:
    """Lower-cased words of identifiers and prose: `NumberUtils.createInteger` -> number, utils, create, integer."""
    out: list[str] = []
    for ident in _IDENT.findall(_PLACEHOLDER.sub(" ", text)):
        out += [w.lower() for w in _WORD.findall(ident) if len(w) > 1 and w.lower() not in _STOP]
    return out


def frame_name(frame: Frame) -> str:
    """`math.NumberUtils.createInteger`: the short name the embedding text shows too (`at ...` lines)."""
    return short_frame(f"{frame.module}.{frame.function}" if frame.module else frame.function)


def weighted_frames(stack_trace: str | None) -> tuple[dict[str, float], list[str]]:
    """Each distinct frame of the top `MAX_FRAMES` with its base weight, and the project's own frames among them.

    The frames are short names (`frame_name`); the project's own ones are returned as full names.
    """
    if not stack_trace:
        return {}, []
    parsed = parse_stack(stack_trace)
    out: dict[str, float] = {}
    own: list[str] = []
    for position, frame in enumerate(parsed.frames[:MAX_FRAMES]):
        name = frame_name(frame)
        if name in out:
            continue  # recursion: the topmost occurrence says where it failed
        if not frame.in_app:
            kind = LIBRARY_WEIGHT
        else:
            kind = TEST_WEIGHT if is_test_frame(frame, parsed.language) else APP_WEIGHT
            own.append(f"{frame.module}.{frame.function}" if frame.module else frame.function)
        out[name] = kind / (1.0 + position)
    return out, own


def lexical_doc(
    *, error_type: str, template: str, frames: Mapping[str, float], own_frames: Iterable[str] = (), extra: str = ""
) -> LexicalDoc:
    """Terms and frames of a pattern or a query.

    Args:
        frames: Weighted frames (`weighted_frames`); each becomes one whole-frame term.
        own_frames: Frames of the project (not libraries): their class and method names become words too.
        extra: Free text (e.g. what a user typed in the search box).
    """
    terms = words(error_type) + words(template)
    if error_type.strip():
        terms.append(TYPE_PREFIX + error_type.strip().lower())
    terms += [FRAME_PREFIX + name for name in frames]
    for name in own_frames:
        terms += words(name)
        terms.append(METHOD_PREFIX + name.rsplit(".", 1)[-1])
    terms += words(extra)
    own = frozenset(short_frame(name) for name in own_frames) & frames.keys()
    return LexicalDoc(tuple(terms), dict(frames), own)


def frames_in_text(text: str) -> dict[str, float]:
    """Frames of an embedding text (`at Class.method` lines), for a query that came without its stack."""
    names = [line[3:].strip() for line in text.splitlines() if line.startswith("at ")]
    return {name: APP_WEIGHT / (1.0 + i) for i, name in enumerate(dict.fromkeys(n for n in names if n))}
