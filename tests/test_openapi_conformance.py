"""The API does what its OpenAPI schema says, and its docs work offline."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

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
