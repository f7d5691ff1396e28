"""The guard: a proposal (action id + parameter values) becomes an argv, or a refusal with a reason.

Untrusted text (from a model, from events, from a request) only ever selects an allow-listed action
and fills its typed parameters. Each value is NFKC-normalised, then must pass generic checks
(no control or invisible characters, ASCII only so look-alikes cannot pass, a small safe character
set, no `..`, no leading `-`) and then match the parameter's rule exactly (allowed values, a full
regex match, or an integer range). The argv is rebuilt from the template, one value per element.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.recovery.config import ActionSpec, ParamSpec, RecoveryConfig

SAFE_CHARS = re.compile(r"[A-Za-z0-9._:/@+=,-]+", re.ASCII)
"""Characters a parameter value may contain. No whitespace or shell metacharacters: some programs
(ssh, `docker exec`, `kubectl exec`) hand their arguments to a shell on the far side."""
INTEGER = re.compile(r"[0-9]{1,18}", re.ASCII)
MAX_PARAMS = 16
MAX_PROPOSALS_PER_DIAGNOSIS = 5


@dataclass(frozen=True)
class Refusal:
    """Why a proposal was refused; `reason` is printable ASCII and bounded (safe to store and show)."""

    code: str
    reason: str


@dataclass(frozen=True)
class Checked:
    """A proposal that passed every check: the action, the normalised values and the exact argv."""

    action: ActionSpec
    params: dict[str, str]
    argv: list[str]
    notes: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        """The parameter values as one stable key (cooldowns and de-duplication are per target)."""
        return ",".join(f"{k}={v}" for k, v in sorted(self.params.items()))


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


def check_value(name: str, spec: ParamSpec, raw: object, services: Sequence[str]) -> str | Refusal:
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


def find_action(config: RecoveryConfig, raw_id: object) -> ActionSpec | Refusal:
    """The allow-listed action a proposal names (exact id after NFKC), or a refusal."""
    if not isinstance(raw_id, str):
        return Refusal("unknown_action", f"action id must be a string, got {type(raw_id).__name__}")
    if len(raw_id) > 256:
        return Refusal("unknown_action", f"unknown action id {show(raw_id)} (too long)")
    action_id = unicodedata.normalize("NFKC", raw_id)
    problem = value_problem(action_id)
    if problem is not None and action_id:
        return Refusal("unknown_action", f"unknown action id {show(raw_id)}: {problem}")
    action = config.action(action_id)
    if action is None:
        return Refusal("unknown_action", f"unknown action id {show(raw_id)} (not in the allow-list)")
    return action


def render_argv(action: ActionSpec, params: Mapping[str, str]) -> list[str]:
    """The argv: literals as written, each `{param}` replaced by its value as one whole element."""
    from agent.recovery.config import PLACEHOLDER

    argv: list[str] = []
    for element in action.argv:
        m = PLACEHOLDER.fullmatch(element)
        argv.append(params[m.group(1)] if m else element)
    return argv


def check_params(action: ActionSpec, raw: Mapping[str, object], services: Sequence[str]) -> Checked | Refusal:
    """Validate every parameter value of a proposal for `action` and build its argv."""
    if len(raw) > MAX_PARAMS:
        return Refusal("bad_param", f"too many parameters ({len(raw)})")
    extra = [k for k in raw if k not in action.params]
    if extra:
        return Refusal("unexpected_param", f"action {action.id!r} takes no parameter {show(extra[0], 60)}")
    params: dict[str, str] = {}
    notes: list[str] = []
    for name, spec in action.params.items():
        if name in raw:
            value = check_value(name, spec, raw[name], services)
            if isinstance(value, Refusal):
                return value
            if value != raw[name]:
                notes.append(f"{name}: {show(raw[name])} normalised to {show(value)}")
        elif spec.default is not None:
            value = check_value(name, spec, spec.default, services)
            if isinstance(value, Refusal):
                return value
        else:
            return Refusal("missing_param", f"action {action.id!r} needs parameter {name!r}")
        params[name] = value
    return Checked(action, params, render_argv(action, params), notes)


def check_proposal(config: RecoveryConfig, action_id: object, raw: Mapping[str, object]) -> Checked | Refusal:
    """Action lookup, mode and parameter checks: the single gate every new proposal passes."""
    from agent.recovery.config import Mode

    action = find_action(config, action_id)
    if isinstance(action, Refusal):
        return action
    if action.mode is Mode.disabled:
        return Refusal("disabled", f"action {action.id!r} is disabled")
    return check_params(action, raw, config.services)


def recheck(
    config: RecoveryConfig, action_id: str, params: Mapping[str, object], argv: Sequence[str]
) -> Checked | Refusal:
    """A stored proposal against the allow-list as it is now; it must still produce exactly `argv`."""
    from agent.recovery.config import Mode

    action = config.action(action_id)
    if action is None:
        return Refusal("unknown_action", f"action {action_id!r} is no longer in the allow-list")
    if action.mode is Mode.disabled:
        return Refusal("disabled", f"action {action_id!r} is disabled")
    checked = check_params(action, params, config.services)
    if isinstance(checked, Refusal):
        return checked
    if checked.argv != list(argv):
        return Refusal("changed", "the action's template changed since this was proposed; propose it again")
    return checked
