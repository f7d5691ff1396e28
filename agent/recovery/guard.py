"""The guard: a proposal (action id + parameter values) becomes an argv, or a refusal with a reason.

Untrusted text (from a model, from events, from a request) only ever selects an allow-listed action
and fills its typed parameters. Each value is NFKC-normalised, then must pass generic checks
(no control or invisible characters, ASCII only so look-alikes cannot pass, a small safe character
set, no `..`, no leading `-`) and then match the parameter's rule exactly (allowed values, a full
regex match, or an integer range). The argv is rebuilt from the template, one value per element.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.recovery.config import PLACEHOLDER, ActionSpec, Mode, RecoveryConfig
from agent.recovery.values import Refusal, check_value, show, value_problem

__all__ = [
    "MAX_PROPOSALS_PER_DIAGNOSIS",
    "Checked",
    "Refusal",
    "check_params",
    "check_proposal",
    "find_action",
    "recheck",
    "render_argv",
]

MAX_PARAMS = 16
MAX_PROPOSALS_PER_DIAGNOSIS = 5


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
