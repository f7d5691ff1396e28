"""Detectors for secrets known by their context: an AWS secret next to its key id, webhook URLs, Azure
signatures, and random values right after ``secret`` / ``token`` / ``key``.

Each one first checks for a literal with ``in`` (a C substring search), so clean text pays almost nothing.
"""

from __future__ import annotations

import math
from collections import Counter

from errlearn_sdk.scrub.rules import (
    _AWS_BARE_SECRET,
    _AWS_KEY_ID,
    _AWS_SECRET_WINDOW,
    _ENTROPY_COMPOUNDS,
    _ENTROPY_TAIL,
    _ENTROPY_WORDS,
    _SAS_SIG,
    _WEBHOOK,
    _ph,
    _Span,
)
from errlearn_sdk.scrub.spans import _splice

_MIN_ENTROPY = 3.5  # bits per character: a 20-character random token has ~4.1, "connection_refused_again" ~3.3


def _aws_secrets(s: str) -> str:
    """``AKIA... wJalr...``: near a key id (or its placeholder), a 40-character base64 word is its secret access
    key, whatever separates them."""
    if not ("AKIA" in s or "ASIA" in s or "aws_key]" in s):
        return s
    spans: list[_Span] = []
    pos = 0
    key = _AWS_KEY_ID.search(s)
    while key:
        pos = max(pos, key.start() - _AWS_SECRET_WINDOW)
        stop = min(len(s), key.end() + _AWS_SECRET_WINDOW)
        m = _AWS_BARE_SECRET.search(s, pos, stop)
        while m:
            v = m[0]
            if any(c.isupper() for c in v) and any(c.islower() for c in v) and any(not c.isalpha() for c in v):
                spans.append((m.start(), m.end(), _ph("aws_secret")))
            m = _AWS_BARE_SECRET.search(s, m.end(), stop)
        pos = stop
        key = _AWS_KEY_ID.search(s, max(key.end(), stop - _AWS_SECRET_WINDOW))
    return _splice(s, sorted(set(spans)))


def _webhooks(s: str) -> str:
    if "hooks" not in s:
        return s
    return _WEBHOOK.sub(lambda m: m[0][: m.start(1) - m.start()] + _ph("webhook"), s)


def _sas_signatures(s: str) -> str:
    if "sig=" not in s:
        return s
    return _SAS_SIG.sub(lambda m: m[0][: m.start(1) - m.start()] + _ph("key_value"), s)


def _entropy(v: str) -> float:
    n = len(v)
    return -sum(c / n * math.log2(c / n) for c in Counter(v).values())


def _high_entropy(s: str, low: str) -> str:
    """``client_secret 8f3e...``, ``signing key: Zk3p...``: a value that looks random right after the word."""
    if not any(w in low for w in _ENTROPY_WORDS):
        return s
    spans: list[_Span] = []
    for word in _ENTROPY_WORDS:
        i = low.find(word)
        while i >= 0:
            span = _entropy_span(s, low, i, i + len(word))
            if span:
                spans.append(span)
            i = low.find(word, i + len(word))
    return _splice(s, spans)


def _entropy_span(s: str, low: str, word_start: int, word_end: int) -> _Span | None:
    m = _ENTROPY_TAIL.match(low, word_end)
    if m is None:
        return None
    start, end = m.span(1)
    if word_start > 0 and low[word_start - 1].isalpha():  # "monkey", "hockey": only known compounds
        head = word_start
        while head > 0 and low[head - 1].isalpha():
            head -= 1
        if not low[head:word_end].startswith(_ENTROPY_COMPOUNDS):
            return None
    v = s[start:end].rstrip(".")  # a full stop ends the sentence
    if v.startswith("/") or not any(c.isdigit() for c in v) or not any(c.isalpha() for c in v):
        return None
    mixed = any(c.isupper() for c in v) and any(c.islower() for c in v)
    if not mixed and any(c in "-_." for c in v):
        return None  # "my-app-51-logs-script", a UUID: names and ids, not keys
    if len(v) >= 20 and _entropy(v) >= _MIN_ENTROPY:
        return start, start + len(v), _ph("high_entropy")
    return None
