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

    def __init__(self, *, emails: bool = True, extra_keys: Iterable[str] = (), max_entries: int = 10_000) -> None:
        super().__init__(emails=emails, extra_keys=extra_keys)
        self._text_cache: dict[str, str] = {}
        self._max_entries = max_entries

    def text(self, s: str) -> str:
        hit = self._text_cache.get(s)
        if hit is None:
            hit = super().text(s)
            if len(self._text_cache) >= self._max_entries:
                self._text_cache.clear()
            self._text_cache[s] = hit
        return hit
