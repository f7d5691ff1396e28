"""Small text helpers shared by the detectors: lower-casing, splicing replacements, randomness tests."""

from __future__ import annotations

from errlearn_sdk.scrub.rules import _ALNUM, _ASCII_LOWER, _B64URL, _Span


def _lower(s: str) -> str:
    low = s.lower()
    # str.lower() turns "İ" into two characters; lower ASCII only then, so offsets stay aligned with `s`.
    return low if len(low) == len(s) else s.translate(_ASCII_LOWER)


def _splice(s: str, spans: list[_Span]) -> str:
    """Replace ``(start, end, text)`` spans; of overlapping spans the first-starting, then longest, wins."""
    if not spans:
        return s
    out: list[str] = []
    pos = 0
    for start, end, repl in sorted(spans, key=lambda span: (span[0], -span[1])):
        if start >= pos:
            out += (s[pos:start], repl)
            pos = end
    out.append(s[pos:])
    return "".join(out)


def _looks_random(v: str) -> bool:
    """True for opaque tokens (``hunter2``, ``a8F2kQzWx``), false for words (``expired``, ``invalid``)."""
    if len(v) < 6:
        return False
    if len(v) >= 20 or (any(c.isdigit() for c in v) and any(c.isalpha() for c in v)):
        return True
    inner = v[1:]
    return len(v) >= 8 and any(c.isupper() for c in inner) and any(c.islower() for c in inner)


def _glued(s: str, start: int, end: int, before: frozenset[str] = _B64URL) -> bool:
    """True when a match is part of a longer word, e.g. ``xeyJ...`` or ``AKIA...`` inside an identifier."""
    return (start > 0 and s[start - 1] in before) or (end < len(s) and s[end] in _ALNUM)
