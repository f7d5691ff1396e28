"""Recovery config: both file forms load, and every mistake names the entry and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agent.recovery.config import (
    Mode,
    RecoveryConfigError,
    command_to_argv,
    load_recovery_config,
    parse_recovery_config,
)
from tests.conftest import REPO
from tests.test_recovery_support import RESTART

EXAMPLE_YAML = REPO / "knowledge" / "recovery.example.yaml"
EXAMPLE_SEED = REPO / "knowledge" / "error_monitor_config.example.json"


def test_none_gives_an_empty_allow_list() -> None:
    cfg = load_recovery_config(None)
    assert cfg.actions == []


def test_the_documented_yaml_example_loads() -> None:
    cfg = load_recovery_config(EXAMPLE_YAML)
    restart = cfg.action("restart_service")
    assert restart is not None
    assert restart.argv == ["docker", "compose", "restart", "{service}"]
    assert restart.mode is Mode.approve
    assert [c.type for c in restart.conditions] == ["service_down", "high_memory"]
    assert (restart.cooldown_minutes, restart.max_runs_per_hour, restart.timeout_seconds) == (10, 3, 120)
    assert restart.env == ["PATH", "HOME", "LANG", "DOCKER_HOST"]
    assert str(restart.working_dir) == "/srv/stack"
    assert cfg.services == ["ai-orchestrator", "event-store", "collab-engine", "postgres"]
    days = cfg.action("clear_tmp_cache")
    assert days is not None and days.params["days"].type == "integer" and days.mode is Mode.auto


def test_every_action_field_is_documented_in_the_yaml_example() -> None:
    from agent.recovery.config import ActionSpec, ParamSpec, RecoveryConfig

    text = EXAMPLE_YAML.read_text()
    for model in (ActionSpec, ParamSpec, RecoveryConfig):
        for name in model.model_fields:
            if name != "source":
                assert f"{name}:" in text, f"{model.__name__}.{name} is not documented in {EXAMPLE_YAML.name}"


def test_the_seed_json_example_loads_as_documented() -> None:
    cfg = load_recovery_config(EXAMPLE_SEED)
    restart = cfg.action("restart_service")
    db = cfg.action("restart_database")
    assert restart is not None and db is not None
    assert restart.argv == ["docker", "compose", "restart", "{service}"]
    assert restart.params["service"].allowed_from == "services"
    assert [c.type for c in restart.conditions] == ["service_down", "high_memory"]
    assert restart.cooldown_minutes == 5 and restart.mode is Mode.propose
    assert db.argv == ["docker", "compose", "restart", "postgres"] and db.params == {}
    assert db.cooldown_minutes == 15
    assert cfg.services == ["ai-orchestrator", "event-store", "collab-engine"]


def test_known_services_are_added_to_the_configured_ones(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"auto_recovery": {"restart": {"command": "systemctl restart {service}"}}}))
    cfg = load_recovery_config(path, known_services=["api", "worker"])
    assert cfg.services == ["api", "worker"]


def test_seed_services_may_be_an_object_of_per_service_settings() -> None:
    cfg = parse_recovery_config(
        {
            "services": {"api": {"port": 80}, "web": {}},
            "auto_recovery": {"restart": {"command": "systemctl restart {service}"}},
        }
    )
    assert cfg.services == ["api", "web"]


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("docker compose restart {service}", ["docker", "compose", "restart", "{service}"]),
        ("  systemctl   restart  {service} ", ["systemctl", "restart", "{service}"]),
        (
            "docker compose --project-name=stack restart postgres",
            ["docker", "compose", "--project-name=stack", "restart", "postgres"],
        ),
    ],
)
def test_seed_commands_become_argv_templates(command: str, argv: list[str]) -> None:
    assert command_to_argv(command, "x") == argv


@pytest.mark.parametrize(
    "command",
    [
        "docker compose restart {service}; rm -rf /",
        "docker compose restart {service} && reboot",
        "docker compose restart {service} | sh",
        "docker compose restart $(whoami)",
        "docker compose restart `whoami`",
        "docker compose restart {service} > /etc/passwd",
        "docker compose restart '{service}'",
        'docker compose restart "{service}"',
        "docker compose restart \\{service\\}",
        "docker compose restart ${SERVICE}",
        "docker compose restart *",
        "docker compose restart {service} &",
        "docker compose restart ~root",
        "docker compose restart {service} # comment",
        "docker compose restart {service}\nreboot",
        "docker compose restart {SERVICE}",
        "docker compose restart (api)",
    ],
)
def test_seed_commands_with_shell_syntax_are_refused(command: str) -> None:
    with pytest.raises(RecoveryConfigError, match=r"auto_recovery\.restart\.command"):
        parse_recovery_config({"services": ["api"], "auto_recovery": {"restart": {"command": command}}})


def _seed(entry: dict[str, Any], services: list[str] | None = None) -> dict[str, Any]:
    return {"services": ["api"] if services is None else services, "auto_recovery": {"restart": entry}}


def _ours(action: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"services": ["api", "worker"], "actions": [action], **top}


def _action(**over: Any) -> dict[str, Any]:
    return {**RESTART, **over}


INVALID: list[tuple[str, dict[str, Any], list[str]]] = [
    (
        "seed placeholder glued to text",
        _seed({"command": "docker compose restart svc-{service}"}),
        ["auto_recovery.restart.argv", "argv[3]", "exactly one"],
    ),
    (
        "seed other placeholder",
        _seed({"command": "docker compose restart {name}"}),
        ["auto_recovery.restart.command", "{name}", "only {service}"],
    ),
    (
        "seed unknown condition",
        _seed({"command": "systemctl restart {service}", "conditions": ["cpu_hot"]}),
        ["auto_recovery.restart.conditions[0]", "cpu_hot", "service_down"],
    ),
    (
        "seed negative cooldown",
        _seed({"command": "systemctl restart {service}", "cooldown_minutes": -1}),
        ["auto_recovery.restart.cooldown_minutes", "greater than or equal to 0"],
    ),
    (
        "seed misspelt field",
        _seed({"comand": "systemctl restart {service}"}),
        ["auto_recovery.restart.comand", "unknown field"],
    ),
    ("seed missing command", _seed({"conditions": ["service_down"]}), ["auto_recovery.restart.command", "non-empty"]),
    (
        "seed service without services",
        _seed({"command": "systemctl restart {service}"}, services=[]),
        ["restart", "params.service", "no services are listed"],
    ),
    ("seed shell program", _seed({"command": "bash restart.sh"}), ["auto_recovery.restart.argv", "argv[0]", "shell"]),
    (
        "seed bad id",
        {"auto_recovery": {"Restart Now": {"command": "systemctl restart x"}}},
        ["auto_recovery.Restart Now.id", "not a valid action id"],
    ),
    (
        "argv as a shell string",
        _ours(_action(argv="docker compose restart api")),
        ["actions[0] (restart_service).argv", "valid list"],
    ),
    (
        "shell as argv[0]",
        _ours(_action(argv=["/bin/sh", "-c", "{service}"])),
        ["actions[0] (restart_service).argv", "argv[0]", "shell"],
    ),
    ("placeholder as program", _ours(_action(argv=["{service}"])), ["restart_service", "argv[0]", "literal"]),
    (
        "undeclared placeholder",
        _ours(_action(argv=["/usr/bin/docker", "restart", "{svc}"])),
        ["restart_service", "argv[2]", "{svc}", "no declared parameter"],
    ),
    (
        "unused parameter",
        _ours(_action(params={"service": {"allowed_from": "services"}, "n": {"regex": "[0-9]+"}})),
        ["restart_service", "params.n", "not used"],
    ),
    (
        "free-text parameter",
        _ours(_action(params={"service": {}})),
        ["restart_service", "params.service", "exactly one of allowed, allowed_from or regex"],
    ),
    (
        "bad regex",
        _ours(_action(params={"service": {"regex": "[a-"}})),
        ["restart_service).params.service.regex", "does not compile"],
    ),
    (
        "allowed value with a dash",
        _ours(_action(params={"service": {"allowed": ["api", "-rf"]}})),
        ["restart_service", "params.service.allowed", "starts with '-'"],
    ),
    (
        "allowed value with a space",
        _ours(_action(params={"service": {"allowed": ["api worker"]}})),
        ["restart_service", "params.service.allowed", "whitespace"],
    ),
    (
        "default outside the rule",
        _ours(_action(params={"service": {"allowed_from": "services", "default": "web"}})),
        ["restart_service", "params.service.default", "not one of the allowed values"],
    ),
    (
        "integer without range",
        _ours(_action(argv=["/bin/x", "{n}"], params={"n": {"type": "integer"}})),
        ["restart_service).params.n", "minimum <= maximum"],
    ),
    ("unknown mode", _ours(_action(mode="yolo")), ["restart_service).mode", "disabled", "auto"]),
    ("auto without conditions", _ours(_action(mode="auto")), ["restart_service", "mode: auto needs conditions"]),
    (
        "unknown condition type",
        _ours(_action(conditions=[{"type": "moon_phase"}])),
        ["restart_service).conditions[0]", "moon_phase"],
    ),
    (
        "condition without a matcher",
        _ours(_action(conditions=[{"type": "pattern"}])),
        ["restart_service).conditions[0]", "pattern_id, error_type or template"],
    ),
    (
        "condition cannot fill a parameter",
        _ours(
            _action(
                argv=["/bin/x", "{service}", "{n}"],
                conditions=[{"type": "service_down"}],
                params={"service": {"allowed_from": "services"}, "n": {"regex": "[0-9]+"}},
            )
        ),
        ["restart_service", "params.n", "give a default"],
    ),
    ("relative working dir", _ours(_action(working_dir="stack")), ["restart_service).working_dir", "absolute"]),
    ("env name", _ours(_action(env=["PATH", "lower case"])), ["restart_service).env", "lower case"]),
    ("zero timeout", _ours(_action(timeout_seconds=0)), ["restart_service).timeout_seconds", "greater than 0"]),
    (
        "unknown action field",
        _ours(_action(command="docker compose restart api")),
        ["restart_service).command", "Extra inputs"],
    ),
    ("duplicate ids", {"services": ["api"], "actions": [RESTART, RESTART]}, ["restart_service", "used twice"]),
    ("bad service name", {"services": ["api; rm"], "actions": []}, ["services", "not a service name"]),
    ("top level is a list", [], ["top level must be an object"]),  # type: ignore[list-item]
]


@pytest.mark.parametrize(("raw", "fragments"), [(c[1], c[2]) for c in INVALID], ids=[c[0] for c in INVALID])
def test_invalid_configs_fail_naming_entry_and_field(raw: dict[str, Any], fragments: list[str]) -> None:
    with pytest.raises(RecoveryConfigError) as info:
        parse_recovery_config(raw, source="cfg.yaml")
    message = str(info.value)
    assert "cfg.yaml" in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"


def test_unparsable_files_name_the_file(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "r.yaml"
    bad_yaml.write_text("actions: [\n  - id: x\n")
    with pytest.raises(RecoveryConfigError, match=r"r\.yaml is not valid"):
        load_recovery_config(bad_yaml)
    bad_json = tmp_path / "r.json"
    bad_json.write_text("{'auto_recovery': }")
    with pytest.raises(RecoveryConfigError, match=r"r\.json is not valid json"):
        load_recovery_config(bad_json)
    with pytest.raises(RecoveryConfigError, match="cannot read"):
        load_recovery_config(tmp_path / "missing.yaml")
