"""The secret scrubber the server applies before it stores, embeds or prompts anything.

One copy with the SDK, which scrubs on the client before sending: the code lives in `errlearn_sdk.scrub`
(`sdk/python/`, standard library only) and the server imports it from there.
"""

from errlearn_sdk.scrub import KINDS, Scrubber

__all__ = ["KINDS", "Scrubber"]
