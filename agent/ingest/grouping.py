"""Assign an event to a pattern: stack-trace fingerprint when there is one, else type + masked template.

Every fingerprint is a function of the event alone (service, type, message, stack) and of the code's
configuration: the same event gets the same fingerprint on any replica, after any restart, in any
arrival order. Stored merge decisions (`pattern_aliases`) are applied on top by the writer.
"""

from __future__ import annotations

from collections import OrderedDict

from agent.domain import Grouping, GroupMethod
from agent.ids import fingerprint_hash
from agent.ingest.stacktrace import parse_stack, stack_fingerprint
from agent.ingest.template import shape

TEMPLATE_SCHEME = "shape1"
"""Versions the template fingerprint material: a change to masking that changes shapes bumps it."""


def template_fingerprint(service: str, error_type: str, template: str) -> str:
    return fingerprint_hash(f"{service}|{error_type}|{TEMPLATE_SCHEME}:{template}")


class Grouper:
    """Pure grouping with a bounded cache (floods repeat the same error verbatim). Not thread-safe."""

    def __init__(self, *, cache_size: int = 20_000) -> None:
        self._cache: OrderedDict[tuple[str, str, str, str | None], Grouping] = OrderedDict()
        self._cache_size = cache_size

    def group(self, *, service: str, error_type: str, message: str, stack_trace: str | None) -> Grouping:
        # The whole message, not its first line: hashing a string is cheaper than finding its first line,
        # and the grouping is a function of the message, so a finer key only costs a few cache misses.
        key = (service, error_type, message, stack_trace)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            return hit
        result = group_event(service=service, error_type=error_type, message=message, stack_trace=stack_trace)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result


def group_event(*, service: str, error_type: str, message: str, stack_trace: str | None) -> Grouping:
    """The grouping of one event (no cache)."""
    template = shape(message) or message[:200]
    if stack_trace:
        parsed = parse_stack(stack_trace)
        fp = stack_fingerprint(parsed, max_frames=3)  # 3 beat 6 on Defects4J: P 0.90 vs 0.89, R 0.42 vs 0.37
        if fp is not None:
            material, reason = fp
            return Grouping(
                fingerprint=fingerprint_hash(f"{service}|stack|{material}"),
                method=GroupMethod.stack,
                template=template,
                reason=reason,
                frames=parsed.frames[:10],
            )
    return Grouping(
        fingerprint=template_fingerprint(service, error_type, template),
        method=GroupMethod.template,
        template=template,
        reason=f"template: {error_type}: {template}",
        fingerprint_source=template,
    )
