"""The :class:`Scrubber`: runs the detectors in rounds on text and recursively on JSON-like data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from errlearn_sdk.scrub.contextual import _aws_secrets, _high_entropy, _sas_signatures, _webhooks
from errlearn_sdk.scrub.detectors import _api_tokens, _bearer, _cards, _emails, _jwts, _private_keys, _url_passwords
from errlearn_sdk.scrub.keyvalue import _cookie_headers, _key_scanners, _key_value_span, _value_span
from errlearn_sdk.scrub.rules import _DATA_KEY_SUFFIXES, _MAX_DEPTH, _MAX_ROUNDS, _NON_ALNUM, _ph
from errlearn_sdk.scrub.spans import _lower, _splice


class Scrubber:
    """Replaces secrets in text and in JSON-like data with ``[REDACTED:<kind>]``.

    Args:
        emails: also redact e-mail addresses (personal data rather than credentials).
        extra_keys: more key names to treat as sensitive, e.g. ``("ssn", "iban")``; matched like the
            built-in ones (as the end of a key, case-insensitive) in ``key=value`` text and in dict keys.
    """

    def __init__(self, *, emails: bool = True, extra_keys: Iterable[str] = ()) -> None:
        self._emails = emails
        extra = frozenset(k.lower() for k in extra_keys if k.strip())
        self._data_suffixes = (*_DATA_KEY_SUFFIXES, *sorted({_NON_ALNUM.sub("", k) for k in extra} - {""}))
        self._pair, self._flag = _key_scanners(extra)
        self._key_cache: dict[str, bool] = {}

    def text(self, s: str) -> str:
        """Return ``s`` with every secret replaced by ``[REDACTED:<kind>]`` (``s`` itself if there is none)."""
        # Detectors look at their neighbours (is this token glued to a word? is this key mid-sentence?), and a
        # redaction changes the neighbours of what is left; another round after a change makes sure that the
        # output is a fixed point, so that text(text(s)) == text(s). Clean text costs one round.
        out = s
        for _ in range(_MAX_ROUNDS):
            new = self._round(out)
            if new == out:
                break
            out = new
        return s if out == s else out

    def _round(self, s: str) -> str:
        if not s:
            return s
        out = _cards(_aws_secrets(_api_tokens(_jwts(_url_passwords(_private_keys(s))))))
        low = _lower(out)
        new = _bearer(out, low)
        if new is not out:
            out, low = new, _lower(new)
        if self._emails:  # before key=value, whose prose rule looks at the word before a key
            new = _emails(out)
            if new is not out:
                out, low = new, _lower(new)
        new = _sas_signatures(_webhooks(self._key_values(out, low)))
        if new is not out:
            out, low = new, _lower(new)
        return _high_entropy(out, low)

    def data(self, value: Any) -> Any:
        """Scrub a JSON-like value recursively into a new value; the input is never mutated.

        Values under sensitive dict keys become ``"[REDACTED:by_key]"`` whatever their type, other strings go
        through :meth:`text`, and dict keys and non-string scalars are kept as they are.
        """
        return self._data(value, 0)

    def contains_secret(self, s: str) -> bool:
        """True when :meth:`text` would change ``s``."""
        return self.text(s) != s

    def _data(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if not isinstance(value, dict | list | tuple):
            return value
        if depth >= _MAX_DEPTH:
            return _ph("too_deep")
        depth += 1
        if isinstance(value, dict):
            return {k: _ph("by_key") if self._sensitive_key(k) else self._data(v, depth) for k, v in value.items()}
        items = [self._data(v, depth) for v in value]
        if isinstance(value, list):
            return items
        return type(value)(*items) if hasattr(value, "_fields") else tuple(items)  # keep namedtuples

    def _sensitive_key(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        hit = self._key_cache.get(key)
        if hit is None:
            hit = _NON_ALNUM.sub("", key.lower()).endswith(self._data_suffixes)
            if len(self._key_cache) >= 4096:  # keys repeat across events; bound the memory anyway
                self._key_cache.clear()
            self._key_cache[key] = hit
        return hit

    def _key_values(self, s: str, low: str) -> str:
        spans = _cookie_headers(s, low)
        n = len(low)
        if "=" in low or ":" in low:
            # One scan finds both separators; `low` still tells them apart.
            rev = low[::-1].replace(":", "=")
            limit = n  # keys come right to left: a value ends where the key after it starts
            m = self._pair.search(rev)
            while m:
                quoted = '"' in m[0] or "'" in m[0]
                span = _key_value_span(s, low, n - m.end(), n - m.start(), limit, key_quoted=quoted)
                if span:
                    spans.append(span)
                limit = n - m.end()
                m = self._pair.search(rev, m.end())
        if "--" in low:
            m = self._flag.search(low)
            while m:
                span = _value_span(s, low, m.end(), n, prose=False)
                if span:
                    spans.append(span)
                m = self._flag.search(low, m.end())
        return _splice(s, spans)
