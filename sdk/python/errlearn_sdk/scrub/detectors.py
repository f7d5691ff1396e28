"""Detectors that find secrets by their shape (private keys, URLs, tokens, cards, bearer, e-mail)."""

from __future__ import annotations

from errlearn_sdk.scrub.rules import (
    _ALNUM,
    _AUTH_HEADER_BEFORE,
    _BEARER,
    _CARD_BYTES,
    _CARD_GROUPINGS,
    _CARD_RUN,
    _CARD_STR,
    _EMAIL_DOMAIN,
    _JWT,
    _NOT_MAIL_TLDS,
    _PRIVATE_KEY,
    _TOKENS,
    _URL_PASSWORD,
    _ph,
    _Span,
)
from errlearn_sdk.scrub.spans import _glued, _looks_random, _splice

# Detectors: each returns `s` itself when it finds nothing. They loop on `search` rather than `finditer`,
# whose iterator costs about a microsecond per call even on text without a match.


def _private_keys(s: str) -> str:
    return _PRIVATE_KEY.sub(_ph("private_key"), s) if "-----BEGIN" in s else s


def _url_passwords(s: str) -> str:
    return _URL_PASSWORD.sub(lambda m: f"://{m[1]}:{_ph('url_password')}@", s) if "://" in s else s


def _jwts(s: str) -> str:
    spans: list[_Span] = []
    m = _JWT.search(s)
    while m:
        if not _glued(s, m.start(), m.end()):
            spans.append((m.start(), m.end(), _ph("jwt")))
        m = _JWT.search(s, m.end())
    return _splice(s, spans)


def _api_tokens(s: str) -> str:
    spans: list[_Span] = []
    for pattern in _TOKENS:
        m = pattern.search(s)
        while m:
            start, end = m.start(m.lastindex or 0), m.end()
            token = s[start:end]
            # "sk-learn-pipeline-step" is a name; real "sk-" keys are random.
            if not _glued(s, start, end, _ALNUM) and (not token.startswith("sk-") or _mixed(token[3:])):
                kind = "aws_key" if token[0] == "A" and not token.startswith("AIza") else "api_token"
                spans.append((start, end, _ph(kind)))
            m = pattern.search(s, end)
    return _splice(s, spans)


def _mixed(body: str) -> bool:
    return any(c.isupper() for c in body) and any(c.islower() for c in body) and any(c.isdigit() for c in body)


def _cards(s: str) -> str:
    view = s.encode("ascii").translate(_CARD_BYTES).decode("ascii") if s.isascii() else s.translate(_CARD_STR)
    spans: list[_Span] = []
    n = len(s)
    m = _CARD_RUN.search(view)
    while m:
        a, b = m.span()
        m = _CARD_RUN.search(view, b)
        # Only whole runs: not a slice of a longer number, an identifier, a negative number or a decimal.
        if a > 0 and (view[a - 1] == "0" or (view[a - 1] == "-" and a > 1 and view[a - 2] == "0")):
            continue
        if b < n and (view[b] == "0" or (view[b] == "-" and b + 1 < n and view[b + 1] == "0")):
            continue
        if a > 0 and (s[a - 1].isalpha() or s[a - 1] in "_.+-"):
            continue
        if b < n and (s[b].isalpha() or s[b] == "_" or (s[b] == "." and b + 1 < n and s[b + 1].isdigit())):
            continue
        if _is_card(s[a:b]):
            spans.append((a, b, _ph("credit_card")))
    return _splice(s, spans)


def _is_card(run: str) -> bool:
    seps = {c for c in run if not c.isdigit()}
    if len(seps) > 1:
        return False
    groups = run.split(seps.pop()) if seps else [run]
    lens = tuple(map(len, groups))
    if len(lens) == 1 and lens[0] > 16:
        return False  # 17-19 plain digits are far more often a 64-bit id than one of the rare long cards
    fours = len(lens) >= 4 and all(n == 4 for n in lens[:-1]) and lens[-1] <= 4
    if len(lens) > 1 and not fours and lens not in _CARD_GROUPINGS:
        return False
    digits = "".join(groups)
    n, first = len(digits), digits[0]
    issuer_ok = (
        (first == "4" and n in (13, 16, 19))
        or (first in "56" and n >= 16)
        or (first == "3" and n >= 14)
        or (first == "2" and n == 16 and 2221 <= int(digits[:4]) <= 2720)
    )
    return issuer_ok and _luhn(digits)


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _bearer(s: str, low: str) -> str:
    spans: list[_Span] = []
    m = _BEARER.search(low)
    while m:
        start, (tok_start, tok_end) = m.start(), m.span(1)
        m = _BEARER.search(low, tok_end)
        if start > 0 and low[start - 1].isalnum():
            continue
        while tok_end > tok_start and low[tok_end - 1] == ".":  # a full stop ends the sentence, not the token
            tok_end -= 1
        in_header = _AUTH_HEADER_BEFORE.search(low, max(0, start - 24), start) is not None
        if tok_end > tok_start and (in_header or _looks_random(s[tok_start:tok_end])):
            spans.append((tok_start, tok_end, _ph("bearer")))
    return _splice(s, spans)


def _emails(s: str) -> str:
    if "@" not in s:
        return s
    spans: list[_Span] = []
    m = _EMAIL_DOMAIN.search(s)
    while m:
        at = i = m.start()
        while i > 0 and at - i <= 64 and (s[i - 1].isalnum() or s[i - 1] in "._%+-"):  # "jörg@" too
            i -= 1
        while i < at and s[i] == ".":
            i += 1
        # "git@github.com:org/repo" is an SSH remote, not a mailbox.
        if i < at and at - i <= 64 and m[1].lower() not in _NOT_MAIL_TLDS and s[i:at] != "git":
            spans.append((i, m.end(), _ph("email")))
        m = _EMAIL_DOMAIN.search(s, m.end())
    return _splice(s, spans)
