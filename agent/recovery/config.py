"""The recovery allow-list as data: actions with argv templates, typed parameters, conditions and limits.

Two file forms are accepted and end up as the same `RecoveryConfig`:

- our form (YAML or JSON): `{"services": [...], "actions": [{"id": ..., "argv": [...], ...}]}`;
- the seed's `error_monitor_config.json`: `{"auto_recovery": {name: {"conditions": [...],
  "command": "docker compose restart {service}", "cooldown_minutes": N}}}`. Its command string is
  split with `shlex` into an argv template after refusing every shell metacharacter.

Anything invalid raises `RecoveryConfigError` naming the entry and the field, so a bad file stops
the service at startup instead of surfacing at 3 a.m. when an action is needed.
"""

from __future__ import annotations

import json
import re
import shlex
import unicodedata
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path, PurePath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent.recovery.conditions import ConditionSpec
from agent.recovery.values import Refusal, check_value, value_problem

ACTION_ID = re.compile(r"[a-z][a-z0-9_]{0,63}")
PARAM_NAME = re.compile(r"[a-z_][a-z0-9_]{0,31}")
PLACEHOLDER = re.compile(r"\{([a-z_][a-z0-9_]{0,31})\}")
SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]{0,127}")
SHELL_METACHARACTERS = frozenset(";|&$`<>()[]{}*?!~#'\"\\")
SHELLS = frozenset(
    {
        "sh",
        "bash",
        "dash",
        "zsh",
        "ksh",
        "mksh",
        "fish",
        "csh",
        "tcsh",
        "busybox",
        "pwsh",
        "powershell",
        "cmd",
        "cmd.exe",
    }
)
"""Programs that would turn argv back into a shell; refused as argv[0] (run a script file instead)."""
SEED_CONDITIONS = ("service_down", "high_memory", "database_connection_failed", "disk_full")
DEFAULT_ENV = ("PATH", "HOME", "LANG")


class RecoveryConfigError(ValueError):
    """The recovery config is invalid; the message names the file, the entry and the field."""


class Mode(StrEnum):
    disabled = "disabled"
    """Never proposed; a proposal naming it is refused."""
    propose = "propose"
    """Proposals are recorded as advice for people; nothing runs (the default)."""
    approve = "approve"
    """Proposals run after an admin approves them."""
    auto = "auto"
    """Proposals run by themselves, but only while the action's conditions hold (checked from stored data)."""


class ParamSpec(BaseModel):
    """One typed parameter of an argv template. Values never come through unchecked."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    type: Literal["string", "integer"] = "string"
    """`string` (needs `allowed`, `allowed_from` or `regex`) or `integer` (needs `minimum` and `maximum`)."""
    allowed: list[str] | None = Field(default=None, min_length=1, max_length=500)
    """Exact allowed values (after NFKC normalisation)."""
    allowed_from: Literal["services"] | None = None
    """`services`: the value must be one of the services listed in the config."""
    regex: str | None = Field(default=None, max_length=500)
    """ASCII regular expression the whole value must match (`re.fullmatch`)."""
    minimum: int | None = None
    maximum: int | None = None
    max_length: int = Field(default=64, ge=1, le=256)
    """Longest accepted value."""
    default: str | None = None
    """Used when a proposal leaves the parameter out (and for condition-triggered proposals)."""
    description: str = Field(default="", max_length=300)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value, re.ASCII)
            except re.error as exc:
                raise ValueError(f"regex does not compile: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _one_rule(self) -> ParamSpec:
        rules = [n for n in ("allowed", "allowed_from", "regex") if getattr(self, n) is not None]
        if self.type == "integer":
            if rules:
                raise ValueError(f"integer parameters take minimum/maximum, not {rules[0]}")
            if self.minimum is None or self.maximum is None or self.minimum > self.maximum:
                raise ValueError("integer parameters need minimum <= maximum")
            if self.minimum < 0:
                raise ValueError("minimum must be >= 0 (a leading '-' would read as a command-line option)")
        elif len(rules) != 1:
            raise ValueError("a string parameter needs exactly one of allowed, allowed_from or regex (no free text)")
        return self


class ActionSpec(BaseModel):
    """One allow-listed action."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    id: str
    """What a proposal names; lower-case letters, digits and `_`."""
    description: str = Field(default="", max_length=300)
    """Shown to the diagnosis model and to people approving."""
    argv: list[str] = Field(min_length=1, max_length=64)
    """The argv template: each element is a literal or exactly one `{param}` (substituted as one element)."""
    params: dict[str, ParamSpec] = Field(default_factory=dict, max_length=16)
    conditions: list[ConditionSpec] = Field(default_factory=list, max_length=16)
    match: Literal["any", "all"] = "any"
    """Whether any condition or all of them (for the same service) must hold."""
    mode: Mode = Mode.propose
    cooldown_minutes: float = Field(default=5.0, ge=0, le=7 * 24 * 60)
    """Least time between two runs for the same parameter values (dry runs count)."""
    max_runs_per_hour: int = Field(default=4, ge=1, le=120)
    """Most runs of this action (any parameters) in any 60 minutes (dry runs count)."""
    breaker_threshold: int = Field(default=3, ge=1, le=100)
    """Consecutive failures (non-zero exit, timeout, or no improvement) that disable the action until reset."""
    timeout_seconds: float = Field(default=60.0, gt=0, le=3600)
    working_dir: Path | None = None
    """Absolute directory to run in (default: errlearn's own)."""
    env: list[str] = Field(default_factory=lambda: list(DEFAULT_ENV), max_length=64)
    """Names of environment variables passed through from errlearn's environment; nothing else is passed."""
    outcome_window_minutes: float = Field(default=10.0, gt=0, le=24 * 60)
    """How long to watch the triggering pattern after a run, compared with the same span before it."""
    max_output_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)
    """Captured stdout and stderr are each cut to this size (head and tail kept)."""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not ACTION_ID.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid action id (lower-case letters, digits, '_'; up to 64)")
        return value

    @field_validator("argv")
    @classmethod
    def _argv_elements(cls, argv: list[str]) -> list[str]:
        for i, element in enumerate(argv):
            where = f"argv[{i}]"
            if not element or len(element) > 4096:
                raise ValueError(f"{where}: elements must be 1-4096 characters")
            if any(unicodedata.category(ch).startswith("C") for ch in element):
                raise ValueError(f"{where}: control characters are not allowed")
            if PLACEHOLDER.fullmatch(element):
                continue
            if "{" in element or "}" in element:
                raise ValueError(
                    f"{where}: {element!r} must be a literal or exactly one '{{param}}' (no text around it)"
                )
        if PLACEHOLDER.fullmatch(argv[0]):
            raise ValueError("argv[0]: the program must be a literal, not a parameter")
        if PurePath(argv[0]).name in SHELLS:
            raise ValueError(f"argv[0]: {argv[0]!r} is a shell; run a script file instead (it gets argv, not a string)")
        return argv

    @field_validator("params")
    @classmethod
    def _param_names(cls, params: dict[str, ParamSpec]) -> dict[str, ParamSpec]:
        for name in params:
            if not PARAM_NAME.fullmatch(name):
                raise ValueError(f"params.{name}: names are lower-case letters, digits and '_'")
        return params

    @field_validator("working_dir")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_absolute():
            raise ValueError(f"working_dir must be an absolute path, got {str(value)!r}")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not ENV_NAME.fullmatch(name):
                raise ValueError(f"env: {name!r} is not an environment variable name (A-Z, 0-9, _)")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> ActionSpec:
        used = [m.group(1) for e in self.argv if (m := PLACEHOLDER.fullmatch(e))]
        for i, element in enumerate(self.argv):
            m = PLACEHOLDER.fullmatch(element)
            if m and m.group(1) not in self.params:
                raise ValueError(f"argv[{i}]: {element!r} names no declared parameter (declare it under params)")
        for name in self.params:
            if name not in used:
                raise ValueError(f"params.{name}: declared but not used in argv")
        if self.mode is Mode.auto and not self.conditions:
            raise ValueError("mode: auto needs conditions (an auto action runs only while they hold)")
        if self.conditions:
            for name, spec in self.params.items():
                if name != "service" and spec.default is None:
                    raise ValueError(
                        f"params.{name}: an action with conditions can fill only 'service' from them; give a default"
                    )
        return self

    @property
    def placeholders(self) -> list[str]:
        return [m.group(1) for e in self.argv if (m := PLACEHOLDER.fullmatch(e))]


class RecoveryConfig(BaseModel):
    """All allow-listed actions, plus the service names that `allowed_from: services` refers to."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    services: list[str] = Field(default_factory=list, max_length=1000)
    """Known service names (the values a `service` parameter may take)."""
    actions: list[ActionSpec] = Field(default_factory=list, max_length=200)
    proposal_ttl_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)
    """An open proposal (not yet run) expires after this long."""
    source: str = ""
    """Where the config was read from (set by the loader)."""

    @field_validator("services")
    @classmethod
    def _service_names(cls, names: list[str]) -> list[str]:
        for name in names:
            if not SERVICE_NAME.fullmatch(name) or ".." in name:
                raise ValueError(f"services: {name!r} is not a service name (letters, digits, '.', '_', '-')")
        return list(dict.fromkeys(names))

    @model_validator(mode="after")
    def _cross_checks(self) -> RecoveryConfig:
        seen: set[str] = set()
        for action in self.actions:
            if action.id in seen:
                raise ValueError(f"action {action.id!r}: id is used twice")
            seen.add(action.id)
            for name, spec in action.params.items():
                where = f"action {action.id!r}: params.{name}"
                if spec.allowed_from == "services" and not self.services:
                    raise ValueError(f"{where}: allowed_from 'services' but no services are listed (add 'services')")
                for value in spec.allowed or ():
                    if unicodedata.normalize("NFKC", value) != value:
                        raise ValueError(f"{where}.allowed: {value!r} is not NFKC-normalised")
                    problem = value_problem(value) if len(value) <= spec.max_length else "is longer than max_length"
                    if problem is not None:
                        raise ValueError(f"{where}.allowed: {value!r} {problem}")
                if spec.default is not None:
                    checked = check_value(name, spec, spec.default, self.services)
                    if isinstance(checked, Refusal):
                        raise ValueError(f"{where}.default: {checked.reason}")
        return self

    def action(self, action_id: str) -> ActionSpec | None:
        return next((a for a in self.actions if a.id == action_id), None)


# -- loading -------------------------------------------------------------------------------------


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RecoveryConfigError(f"cannot read recovery config {path}: {exc}") from exc
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise RecoveryConfigError(
            f"recovery config {path} is not valid {path.suffix.lstrip('.') or 'YAML'}: {exc}"
        ) from exc


def command_to_argv(command: object, where: str) -> list[str]:
    """Turn a seed `command` string into an argv template, refusing anything a shell would interpret."""
    if not isinstance(command, str) or not command.strip():
        raise RecoveryConfigError(f"{where}: must be a non-empty string")
    outside = PLACEHOLDER.sub("", command)
    bad = sorted({ch for ch in outside if ch in SHELL_METACHARACTERS})
    if bad:
        raise RecoveryConfigError(
            f"{where}: shell metacharacters {''.join(bad)!r} are not allowed in {command!r}; "
            "nothing runs through a shell, so use our YAML form with an argv list if you need more"
        )
    if any(unicodedata.category(ch).startswith("C") and ch != " " for ch in command) or not command.isascii():
        raise RecoveryConfigError(f"{where}: control or non-ASCII characters are not allowed in {command!r}")
    return shlex.split(command, posix=True)


def _seed_to_ours(raw: dict[str, Any], where: str) -> tuple[dict[str, Any], list[str]]:
    entries = raw.get("auto_recovery")
    if not isinstance(entries, dict):
        raise RecoveryConfigError(f"{where}: 'auto_recovery' must be an object of name -> action")
    services_raw = raw.get("services", [])
    services = list(services_raw) if isinstance(services_raw, dict | list) else []
    actions: list[dict[str, Any]] = []
    names: list[str] = []
    allowed_keys = {
        "conditions",
        "command",
        "cooldown_minutes",
        "description",
        "mode",
        "max_runs_per_hour",
        "timeout_seconds",
        "enabled",
    }
    for name, entry in entries.items():
        at = f"auto_recovery.{name}"
        if not isinstance(entry, dict):
            raise RecoveryConfigError(f"{where}: {at}: must be an object")
        extra = sorted(set(entry) - allowed_keys)
        if extra:
            raise RecoveryConfigError(
                f"{where}: {at}.{extra[0]}: unknown field (known: {', '.join(sorted(allowed_keys))})"
            )
        argv = command_to_argv(entry.get("command"), f"{where}: {at}.command")
        params: dict[str, Any] = {}
        for i, element in enumerate(argv):
            m = PLACEHOLDER.fullmatch(element)
            if m and m.group(1) != "service":
                raise RecoveryConfigError(
                    f"{where}: {at}.command: argv[{i}] {{{m.group(1)}}} is not supported in the seed form "
                    "(only {service}); declare typed parameters in our YAML form"
                )
            if m:
                params["service"] = {"allowed_from": "services"}
        conditions: list[Any] = []
        for i, cond in enumerate(entry.get("conditions") or []):
            if isinstance(cond, str):
                if cond not in SEED_CONDITIONS:
                    raise RecoveryConfigError(
                        f"{where}: {at}.conditions[{i}]: unknown condition {cond!r} (known: {', '.join(SEED_CONDITIONS)})"
                    )
                conditions.append({"type": cond})
            else:
                conditions.append(cond)
        mode = entry.get("mode", Mode.propose.value)
        if entry.get("enabled") is False:
            mode = Mode.disabled.value
        action: dict[str, Any] = {
            "id": name,
            "description": entry.get("description") or f"run `{entry['command']}`",
            "argv": argv,
            "params": params,
            "conditions": conditions,
            "mode": mode,
        }
        for key in ("cooldown_minutes", "max_runs_per_hour", "timeout_seconds"):
            if key in entry:
                action[key] = entry[key]
        actions.append(action)
        names.append(str(name))
    return {"services": services, "actions": actions}, names


def _loc(loc: tuple[int | str, ...], names: Sequence[str], seed: bool) -> str:
    parts = list(loc)
    if len(parts) >= 2 and parts[0] == "actions" and isinstance(parts[1], int):
        i = parts[1]
        name = names[i] if i < len(names) else str(i)
        head = f"auto_recovery.{name}" if seed else f"actions[{i}] ({name})"
        parts = [head, *parts[2:]]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def parse_recovery_config(raw: Any, *, source: str = "<config>", known_services: Sequence[str] = ()) -> RecoveryConfig:
    """Validate an already-parsed config document (either form)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RecoveryConfigError(f"recovery config {source}: the top level must be an object")
    seed = "auto_recovery" in raw
    if seed:
        body, names = _seed_to_ours(raw, f"recovery config {source}")
    else:
        body = dict(raw)
        actions = body.get("actions") or []
        names = [str(a.get("id", i)) if isinstance(a, dict) else str(i) for i, a in enumerate(actions)]
    services = body.get("services") or []
    body["services"] = list(dict.fromkeys([*services, *known_services])) if isinstance(services, list) else services
    body["source"] = source
    try:
        return RecoveryConfig.model_validate(body)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:5]:
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            where = _loc(tuple(err.get("loc", ())), names, seed)
            problems.append(f"{where}: {msg}" if where else msg)
        raise RecoveryConfigError(f"invalid recovery config {source}: " + "; ".join(problems)) from exc


def load_recovery_config(path: Path | None, *, known_services: Sequence[str] = ()) -> RecoveryConfig:
    """Read the allow-list from `path` (our YAML/JSON form or the seed's JSON); None gives no actions.

    Raises:
        RecoveryConfigError: the file is unreadable or invalid; the message names the entry and field.
    """
    if path is None:
        return RecoveryConfig(services=list(dict.fromkeys(known_services)))
    return parse_recovery_config(_read(path), source=str(path), known_services=known_services)
