"""The quality gate: a model's answer that says nothing is not stored as a diagnosis or an answer.

Refused, with the reason:
- echoes of the evidence aliases (`[P4]`), of evidence headers (`IncidentEvidence`, `service=… severity=…`,
  `in-app frames`) or of the prompt's own sentences ("The solution steps are short imperative sentences.");
- text without content words (fewer than `MIN_CONTENT_WORDS` words of 3+ letters outside the stopwords,
  the aliases and the headers).
Pure functions: callers turn a refusal into an `inconclusive` result that carries the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

MIN_CONTENT_WORDS = 3
SHINGLE = 5
"""An answer sharing a run of this many words with the prompt is an echo of it."""
_ALIAS = re.compile(r"\[?\b[EPKG]\d{1,3}\b\]?")
_HEADER = re.compile(
    r"\b(?:IncidentEvidence|evidence items?|service=\S*|severity=\S*|kind=\S*|in-app frames(?: \(innermost first\))?|"
    r"error pattern|similar earlier error|its diagnosis|no evidence)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[A-Za-z][A-Za-z0-9_'-]{2,}")
_STOP_TEXT = """the and for are was were with this that from into onto have has had not but its their there here then than
    which what when where why how who been being will would could should may might must can does did done also
    very just only some any all each every other such more most less least same own out over under about
    error errors issue issues problem problems evidence item items alias aliases answer summary root cause
    cause causes step steps solution solutions failing fails failed failure pattern patterns service
    unknown none null n/a"""
_STOP = frozenset(_STOP_TEXT.split())


def content_words(text: str) -> list[str]:
    """Words that can carry meaning: 3+ letters, not stopwords, not aliases or evidence headers."""
    text = _HEADER.sub(" ", _ALIAS.sub(" ", text))
    return [w for w in (m.group(0).lower() for m in _WORD.finditer(text)) if w not in _STOP]


def _shingles(text: str, n: int = SHINGLE) -> set[tuple[str, ...]]:
    words = [w.lower() for w in re.findall(r"[A-Za-z0-9']+", text)]
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def echo_reason(texts: Sequence[str], prompt_texts: Iterable[str], quoted: Iterable[str] = ()) -> str | None:
    """Why `texts` (summary, root cause, steps) echo the prompt, or None.

    `quoted`: text the answer may repeat (the evidence, the pattern, the question): quoting the error
    is not echoing the instructions.
    """
    allowed = set().union(*(_shingles(q) for q in quoted))
    prompt = set().union(*(_shingles(p) for p in prompt_texts)) - allowed
    for text in texts:
        if not text.strip():
            continue
        if prompt and _shingles(text) & prompt:
            return f"the answer repeats the prompt ({text[:60]!r})"
        stripped = _HEADER.sub(" ", _ALIAS.sub(" ", text)).strip(" .,;:-[]()")
        if not stripped:
            return f"the answer only repeats aliases or evidence headers ({text[:60]!r})"
    return None


def quality_problem(
    *, summary: str, root_cause: str, steps: Sequence[str], prompt_texts: Iterable[str], quoted: Iterable[str] = ()
) -> str | None:
    """The reason a model's diagnosis must not be stored, or None when it passes the gate."""
    reason = echo_reason([summary, root_cause, *steps], prompt_texts, quoted)
    if reason:
        return reason
    if len(content_words(root_cause)) < MIN_CONTENT_WORDS:
        return "the root cause is empty of content words"
    return None


def answer_problem(answer: str, prompt_texts: Iterable[str], quoted: Iterable[str] = ()) -> str | None:
    """The reason a chat answer must not be shown as an answer, or None."""
    reason = echo_reason([answer], prompt_texts, quoted)
    if reason:
        return reason
    if len(content_words(answer)) < MIN_CONTENT_WORDS:
        return "the answer is empty of content words"
    return None
