"""``key=value``, ``key: value``, ``--key value`` and ``Cookie:`` detection, on the lower-cased text."""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from typing import Any

from errlearn_sdk.scrub.rules import (
    _AWS_SECRET_KEY,
    _AWS_SECRET_VALUE,
    _BENIGN_VALUES,
    _CODE_VALUE_PREFIXES,
    _COOKIE_HEADER,
    _KEY_CHARS,
    _MARK,
    _NEXT_PAIR,
    _PLACEHOLDER_VALUE,
    _SCHEME_VALUE,
    _SCHEMES,
    _STRUCTURE_BEFORE_KEY,
    _TEXT_KEY_WORDS,
    _VALUE,
    _ph,
    _Span,
)
from errlearn_sdk.scrub.spans import _looks_random


def _trie(words: Iterable[str]) -> str:
    """An alternation shaped as a prefix trie, so ``re`` tests one branch per character, not one per word."""
    root: dict[str, Any] = {}
    for word in words:
        node = root
        for ch in word:
            node = node.setdefault(ch, {})
        node[""] = {}

    def walk(node: dict[str, Any]) -> str:
        branches = [re.escape(ch) + walk(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
        return f"(?:{body})?" if "" in node else body  # greedy "?": the longer word wins

    return walk(root)


@functools.lru_cache(maxsize=16)
def _key_scanners(extra: frozenset[str]) -> tuple[re.Pattern[str], re.Pattern[str]]:
    """Scanners for ``key=value`` / ``key: value`` (on reversed text, ``:`` made ``=``) and ``--key value``."""
    words = {*_TEXT_KEY_WORDS, *extra}
    # Reversed, `key"  =` reads `=  "key`: the separator is the literal that the search skips to.
    pair = re.compile(r"=[ \t]*(?:[\"']\\?)?" + _trie(w[::-1] for w in words))  # no group: cheaper attempts
    flag = re.compile(r"--(?:[a-z0-9]+[-_])*" + _trie(words) + r"[ \t]+(?!-)")
    return pair, flag


def _in_prose(low: str, key_start: int) -> bool:
    """True for ``Invalid token: x`` and ``Exception: session: x``: a bare key after a space, mid-line.

    A key at the start of a line or after ``{ [ ( , ; & ? |`` or a quote is structured (YAML, logfmt, a
    dict). Anything else before the space (a word, ``:``, or a placeholder that replaced a word, so that a
    second pass agrees with the first) reads as a sentence.
    """
    i = key_start - 1
    if i < 0 or low[i] not in " \t":
        return False
    while i >= 0 and low[i] in " \t":
        i -= 1
    return i >= 0 and low[i] not in _STRUCTURE_BEFORE_KEY


def _keep_value(value: str, *, quoted: bool, after: str, prose: bool, key_quoted: bool = False) -> bool:
    """True when the value of a sensitive key cannot be a secret (see the module docstring)."""
    v = value.strip()
    lv = v.lower()
    if not v or lv.startswith(_MARK.lower()) or lv in _BENIGN_VALUES or _PLACEHOLDER_VALUE.fullmatch(lv):
        return True
    if quoted:
        return False
    if (after and after in "([") or lv.startswith(_CODE_VALUE_PREFIXES):
        return True  # code in a traceback: `token = get_token(...)`, `password = request.form["password"]`
    if lv.startswith("/") and lv.count("/") > 1:
        return True  # a path such as PWD=/srv/app or password_file=/run/secrets/db
    if lv in _SCHEMES and after in (" ", "\t"):
        return True  # `Authorization: Bearer [REDACTED:bearer]`: the bearer detector owns the token
    if key_quoted and v.isalpha():
        return True  # `"key": word`: in JSON or a dict repr a bare word is a literal, not a string value
    return prose and not _looks_random(v)


def _value_span(s: str, low: str, value_pos: int, limit: int, *, prose: bool, key_quoted: bool = False) -> _Span | None:
    m = _VALUE.match(low, value_pos, limit)
    if m is None:
        return None
    group = m.lastindex or 4
    start, end = m.span(group)
    quoted = group < 4
    after = "" if quoted else s[end : end + 1]
    if _keep_value(s[start:end], quoted=quoted, after=after, prose=prose, key_quoted=key_quoted):
        return None
    if not quoted and start > value_pos and _NEXT_PAIR.match(low, start, end):
        return None  # `password= user=bob`: an empty value, then the next pair
    return start, end, _ph("key_value")


def _key_value_span(s: str, low: str, word_start: int, value_pos: int, limit: int, *, key_quoted: bool) -> _Span | None:
    """The span to redact for the key word at ``word_start`` whose separator ends just before ``value_pos``.

    The value ends by ``limit``, where the next key starts: without it ``password=password=...`` would scan
    to the end of the text once per key.
    """
    key_start = word_start
    while key_start > 0 and word_start - key_start < 64 and low[key_start - 1] in _KEY_CHARS:
        key_start -= 1
    if key_start > 0 and low[key_start - 1] in "/\\":
        return None  # "open /etc/passwd: cannot read": a path, not a key
    sep = low[value_pos - 1]
    key = low[key_start:value_pos].rstrip(" \t:=\"'\\")
    scheme = _SCHEME_VALUE.match(low, value_pos) if key.endswith("authorization") else None
    if scheme:  # `Authorization: Token abc`: keep the scheme, redact the credential as the bearer detector does
        done = scheme[1] == "digest" or scheme[2].startswith(_MARK.lower())
        return None if done else (scheme.start(2), scheme.end(2), _ph("bearer"))
    prose = sep == ":" and key_start == word_start and not key_quoted and _in_prose(low, word_start)
    span = _value_span(s, low, value_pos, limit, prose=prose, key_quoted=key_quoted)
    if span is None:
        return None
    if _AWS_SECRET_KEY.fullmatch(key) and _AWS_SECRET_VALUE.fullmatch(s, span[0], span[1]):
        return span[0], span[1], _ph("aws_secret")
    return span


def _cookie_headers(s: str, low: str) -> list[_Span]:
    """``Cookie: a=1; sid=2``: every cookie on the line is a credential, not only those with telling names."""
    spans: list[_Span] = []
    m = _COOKIE_HEADER.search(low)
    while m:
        start, end = m.span(1)
        value = s[start:end].rstrip()
        if value.lower() not in _BENIGN_VALUES:
            spans.append((start, start + len(value), _ph("key_value")))
        m = _COOKIE_HEADER.search(low, m.end())
    return spans
