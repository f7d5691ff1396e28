"""One parameter value against its rule: the generic checks every value passes, then the rule's own.

The lowest floor of the recovery layer: the config validates its allowed values and defaults with these,
and the guard checks every proposal with them. It imports neither (the rule is a protocol).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

SAFE_CHARS = re.compile(r"[A-Za-z0-9._:/@+=,-]+", re.ASCII)
"""Characters a parameter value may contain. No whitespace or shell metacharacters: some programs
(ssh, `docker exec`, `kubectl exec`) hand their arguments to a shell on the far side."""
INTEGER = re.compile(r"[0-9]{1,18}", re.ASCII)


class ValueRule(Protocol):
    """What `check_value` reads from a parameter's spec (`agent.recovery.config.ParamSpec`)."""

    @property
    def type(self) -> Literal["string", "integer"]: ...
    @property
    def allowed(self) -> list[str] | None: ...
    @property
    def allowed_from(self) -> Literal["services"] | None: ...
    @property
    def regex(self) -> str | None: ...
    @property
    def minimum(self) -> int | None: ...
    @property
    def maximum(self) -> int | None: ...
    @property
    def max_length(self) -> int: ...


@dataclass(frozen=True)
class Refusal:
    """Why a proposal was refused; `reason` is printable ASCII and bounded (safe to store and show)."""

    code: str
    reason: str


def show(value: object, limit: int = 80) -> str:
    """Render untrusted input for a reason or an audit row: ASCII-escaped, quoted, bounded."""
    text = ascii(value) if isinstance(value, str) else ascii(repr(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def value_problem(value: str) -> str | None:
    """The first generic problem with a normalised value, or None."""
    if not value:
        return "is empty"
    for ch in value:
        if unicodedata.category(ch).startswith("C"):
            return f"contains a control or invisible character U+{ord(ch):04X}"
    for ch in value:
        if not ch.isascii():
            name = unicodedata.name(ch, "unnamed")
            return f"contains non-ASCII character U+{ord(ch):04X} ({name}); look-alike characters are refused"
    if not SAFE_CHARS.fullmatch(value):
        bad = next(ch for ch in value if not SAFE_CHARS.fullmatch(ch))
        return f"contains {bad!r} (whitespace and shell metacharacters are refused)"
    if ".." in value:
        return "contains '..' (path traversal)"
    if value.startswith("-"):
        return "starts with '-' (it would be read as a command-line option)"
    return None


def check_value(name: str, spec: ValueRule, raw: object, services: Sequence[str]) -> str | Refusal:
    """The normalised value of parameter `name`, or why it is refused."""
    if not isinstance(raw, str):
        return Refusal("bad_param", f"parameter {name!r}: must be a string, got {type(raw).__name__}")
    if len(raw) > spec.max_length * 4:  # bound the work before normalising
        return Refusal("bad_param", f"parameter {name!r}: too long ({len(raw)} > {spec.max_length} characters)")
    value = unicodedata.normalize("NFKC", raw)
    if len(value) > spec.max_length:
        return Refusal("bad_param", f"parameter {name!r}: too long ({len(value)} > {spec.max_length} characters)")
    problem = value_problem(value)
    if problem is not None:
        return Refusal("bad_param", f"parameter {name!r}: {show(raw)} {problem}")
    if spec.type == "integer":
        if not INTEGER.fullmatch(value):
            return Refusal("bad_param", f"parameter {name!r}: {show(raw)} is not a whole number")
        number = int(value)
        low, high = spec.minimum or 0, spec.maximum if spec.maximum is not None else 0
        if not low <= number <= high:
            return Refusal("bad_param", f"parameter {name!r}: {number} is outside {low}..{high}")
        return str(number)
    allowed = list(services) if spec.allowed_from == "services" else spec.allowed
    if allowed is not None:
        if value not in allowed:
            return Refusal("bad_param", f"parameter {name!r}: {show(raw)} is not one of the allowed values")
        return value
    if spec.regex is None or not re.fullmatch(spec.regex, value, re.ASCII):
        return Refusal("bad_param", f"parameter {name!r}: {show(raw)} does not match {spec.regex!r}")
    return value
