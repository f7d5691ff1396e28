"""Every integer in the API schema is bounded, so no number a client sends reaches the database unchecked.

SQLite raises ``OverflowError`` on integers of 2**63 and more, PostgreSQL on ids past its column type; before
the bounds both answered 500.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.api.schemas import MAX_INT
from agent.recovery.service import Recovery
from agent.settings import Settings
from tests.conftest import admin_headers
from tests.test_recovery_api import api  # noqa: F401  # the fixture

HUGE = 2**63


def _integer_params(schema: dict[str, Any]) -> list[tuple[str, str, str, dict[str, Any]]]:
    found = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            for param in op.get("parameters", []):
                s = param.get("schema", {})
                for alt in [s, *s.get("anyOf", [])]:
                    if alt.get("type") == "integer":
                        found.append((method, path, param["name"], alt))
    return found


def _integer_fields(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    found = []
    for name, comp in schema.get("components", {}).get("schemas", {}).items():
        if not name.endswith("Request"):
            continue
        for field, prop in comp.get("properties", {}).items():
            for alt in [prop, *prop.get("anyOf", [])]:
                if alt.get("type") == "integer":
                    found.append((name, field, alt))
    return found


def test_every_integer_parameter_and_request_field_has_bounds(settings: Settings) -> None:
    schema = create_app(settings).openapi()
    params = _integer_params(schema)
    assert len(params) >= 10  # limit/offset/k/samples/hours/top and the proposal ids
    for method, path, name, s in params:
        assert "minimum" in s and s.get("maximum", HUGE) <= MAX_INT, (method, path, name, s)
    for model, field, s in _integer_fields(schema):
        assert "minimum" in s and s.get("maximum", HUGE) <= MAX_INT, (model, field, s)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("get", f"/patterns?offset={HUGE}"),
        ("get", f"/recovery/proposals?offset={HUGE}"),
        ("get", f"/recovery/audit?offset={HUGE}"),
        ("get", f"/recovery/proposals/{HUGE}"),
        ("post", f"/recovery/proposals/{HUGE}/approve"),
        ("post", f"/recovery/proposals/{HUGE}/deny"),
        ("get", f"/recovery/proposals/{MAX_INT + 1}"),
        ("get", f"/patterns?offset={MAX_INT + 1}"),
    ],
)
def test_huge_integers_are_a_422_naming_the_field(
    api: tuple[TestClient, Recovery, Any],  # noqa: F811
    method: str,
    url: str,
) -> None:
    client, _, _ = api
    body = {"actor": "alice", "reason": "no"} if url.endswith("/deny") else None
    r = client.request(method.upper(), url, headers=admin_headers(), json=body)
    assert r.status_code == 422, r.text
    field = "proposal_id" if "/proposals/" in url else "offset"
    assert field in r.text


def test_the_largest_allowed_values_are_answered(api: tuple[TestClient, Recovery, Any]) -> None:  # noqa: F811
    client, _, _ = api
    assert client.get(f"/patterns?offset={MAX_INT}").status_code == 200
    assert client.get(f"/recovery/audit?offset={MAX_INT}", headers=admin_headers()).status_code == 200
    assert client.get(f"/recovery/proposals/{MAX_INT}", headers=admin_headers()).status_code == 404
