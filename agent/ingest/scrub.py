"""The secret scrubber the server applies before it stores, embeds or prompts anything.

One copy with the SDK, which scrubs on the client before sending: the code lives in `errlearn_sdk.scrub`
(`sdk/python/`, standard library only) and the server imports it from there.
"""

from __future__ import annotations

from collections.abc import Iterable

from errlearn_sdk.scrub import KINDS, Scrubber

__all__ = ["KINDS", "CachedScrubber", "Scrubber"]


class CachedScrubber(Scrubber):
    """`Scrubber` that remembers what it returned for each distinct string (a bounded cache).

    Floods repeat contexts, stack traces and `additional_data` values verbatim, and `text` is a pure
    function of its input, so each distinct string is scrubbed once; `data` goes through `text` for
    every string it holds, so values inside `additional_data` hit the same cache.
    """

    def __init__(
        self,
        *,
        emails: bool = True,
        extra_keys: Iterable[str] = (),
        max_entries: int = 10_000,
        max_chars: int = 4_000_000,
    ) -> None:
        super().__init__(emails=emails, extra_keys=extra_keys)
        self._text_cache: dict[str, str] = {}
        self._max_entries = max_entries
        self._max_chars = max_chars
        """Bound on the characters the cache holds (keys and values): 10,000 64 KB stack traces would be 1.3 GB."""
        self._chars = 0
        self._max_item = max(1, max_chars // 64)
        """A longer string is scrubbed every time: one giant trace must not flush the cache."""

    def text(self, s: str) -> str:
        hit = self._text_cache.get(s)
        if hit is None:
            hit = super().text(s)
            size = len(s) + len(hit)
            if size > self._max_item:
                return hit
            if len(self._text_cache) >= self._max_entries or self._chars + size > self._max_chars:
                self._text_cache.clear()
                self._chars = 0
            self._text_cache[s] = hit
            self._chars += size
        return hit
