"""The API does what its OpenAPI schema says, and its docs work offline."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from tests.conftest import admin_headers

REPO = Path(__file__).resolve().parents[1]


def test_docs_are_served_without_a_cdn(client: TestClient) -> None:
    page = client.get("/docs", headers={"Authorization": ""})  # public
    assert page.status_code == 200
    assert "cdn" not in page.text.lower() and "/docs/static/swagger-ui-bundle.js" in page.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        r = client.get(f"/docs/static/{asset}", headers={"Authorization": ""})
        assert r.status_code == 200 and len(r.content) > 10_000
    assert client.get("/redoc").status_code == 404  # ReDoc exists only on a CDN: not offered


def test_a_number_is_not_a_date_time(client: TestClient) -> None:
    for value in ("0.5", "1700000000", "-3"):
        r = client.get("/patterns", params={"since": value})
        assert r.status_code == 422, (value, r.text)
        assert r.json()["error"]["fields"][0]["field"].endswith("since")
    r = client.post("/ask", json={"question": "why did it fail?", "since": 0.5})
    assert r.status_code == 422 and "since" in r.text
    assert client.get("/patterns", params={"since": "2024-05-01T12:00:00Z"}).status_code == 200


def test_schema_and_behaviour_agree_on_empty_search_text(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    text = schema["components"]["schemas"]["SearchRequest"]["properties"]["text"]
    assert {"type": "string", "minLength": 1} in [
        {k: v for k, v in alt.items() if k != "maxLength"} for alt in text["anyOf"]
    ]
    r = client.post("/search", json={"text": ""})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "text"


def test_ask_stream_is_declared_as_server_sent_events(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/ask/stream"]["post"]
    assert list(op["responses"]["200"]["content"]) == ["text/event-stream"]


def test_the_readme_says_which_endpoints_are_public() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme[readme.index("Public endpoints") :][:800]
    for endpoint in ("/health", "/metrics", "/docs", "/openapi.json"):
        assert endpoint in section


def test_every_error_answer_is_declared(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    for path, operations in schema["paths"].items():
        if path == "/metrics":  # public, plain text, answers 200 only (and is off unless enabled)
            continue
        for method, op in operations.items():
            for status in ("401", "403", "404", "413", "422", "503"):
                assert status in op["responses"], (method, path, status)
    body = schema["components"]["schemas"]["ErrorBody"]
    assert body["required"] == ["error"]
    r = client.get("/patterns/pat_missing")  # a real 404 has the declared shape
    assert r.status_code == 404 and set(r.json()["error"]) >= {"code", "message"}


def test_a_405_names_the_methods_the_path_really_takes(client: TestClient) -> None:
    # Starlette named the first route matching the path: GET /guide/{entry_id} for /guide/render.
    r = client.options("/guide/render", headers=admin_headers())
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = client.get("/guide/render", headers=admin_headers())
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = client.put("/errors")
    assert r.status_code == 405 and r.headers["allow"] == "POST"
    r = client.delete("/guide/ERROR-001")
    assert r.status_code == 405 and r.headers["allow"] == "GET"


def test_search_schema_needs_text_or_event_and_a_real_boolean(client: TestClient) -> None:
    request = client.get("/openapi.json").json()["components"]["schemas"]["SearchRequest"]
    assert [alt["required"] for alt in request["oneOf"]] == [["text"], ["event"]]
    assert client.post("/search", json={}).status_code == 422
    r = client.post("/search", json={"text": "timeout", "knowledge": 0})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "knowledge"
    assert client.post("/search", json={"text": "timeout", "knowledge": False}).status_code == 200


def test_ask_stream_declares_each_event(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/ask/stream"]["post"]
    event = op["responses"]["200"]["content"]["text/event-stream"]["schema"]
    assert event["properties"]["event"]["enum"] == ["delta", "done", "error"]


def test_a_batch_rejecting_every_item_matches_its_declared_422(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    declared = schema["paths"]["/errors/batch"]["post"]["responses"]["422"]["content"]["application/json"]["schema"]
    r = client.post("/errors/batch", json={"errors": [[None]]})
    assert r.status_code == 422
    assert set(declared["anyOf"][1]["required"]) <= set(r.json())
