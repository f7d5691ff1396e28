"""Assign an event to a pattern: stack-trace fingerprint when there is one, else type + mined template."""

from __future__ import annotations

from collections import OrderedDict

from agent.domain import Grouping, GroupMethod
from agent.ids import fingerprint_hash
from agent.ingest.stacktrace import parse_stack, stack_fingerprint
from agent.ingest.template import TemplateMinerStore, first_line


class Grouper:
    """Deterministic grouping. Not thread-safe: the single writer thread owns it.

    Floods repeat the same error verbatim, so results are cached by the exact inputs that decide them
    (service, type, the mined first line, the stack). A cached answer is what Drain3 would say again:
    a message it has seen maps to the same cluster, and parsing a stack has no state.
    """

    def __init__(self, miner: TemplateMinerStore, *, cache_size: int = 20_000) -> None:
        self.miner = miner
        self.dirty = False
        """True when the miner changed since the last snapshot."""
        self._cache: OrderedDict[tuple[str, str, str, str | None], Grouping] = OrderedDict()
        self._cache_size = cache_size

    def group(self, *, service: str, error_type: str, message: str, stack_trace: str | None) -> Grouping:
        key = (service, error_type, first_line(message), stack_trace)
        hit = self._cache.get(key)
        if hit is not None:
            self._cache.move_to_end(key)
            if hit.method is GroupMethod.template:  # the template may have generalised since
                template = self.miner.template_of(int(hit.fingerprint_source)) or hit.template
                if template != hit.template:
                    hit = hit.model_copy(update={"template": template})
            return hit
        result = self._group(service=service, error_type=error_type, message=message, stack_trace=stack_trace)
        self._cache[key] = result
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return result

    def _group(self, *, service: str, error_type: str, message: str, stack_trace: str | None) -> Grouping:
        mined = self.miner.mine(message)
        self.dirty |= mined.changed
        template = mined.template or message[:200]
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
            fingerprint=fingerprint_hash(f"{service}|{error_type}|drain:{mined.cluster_id}"),
            method=GroupMethod.template,
            template=template,
            reason=f"template: {error_type}: {template}",
            fingerprint_source=str(mined.cluster_id),
        )
