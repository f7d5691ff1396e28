"""`POST /ask` and `/ask/stream` with the model down: a JSON 503 naming what is down, never a plain-text 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from fastapi.testclient import TestClient
from pydantic_ai.messages import ModelMessage, ModelResponse
from pydantic_ai.models.function import AgentInfo, FunctionModel

from agent.api.app import create_app
from agent.settings import Settings
from tests.conftest import INGEST_KEY
from tests.diag_support import services_with
from tests.support import free_port

QUESTION = {"question": "why did checkout fail?"}


def _client(settings: Settings, **kw: object) -> Iterator[TestClient]:
    with TestClient(create_app(settings, **kw), raise_server_exceptions=False) as c:  # type: ignore[arg-type]
        c.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        yield c


@pytest.fixture
def ollama_down(settings: Settings) -> Iterator[tuple[TestClient, str]]:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    for c in _client(settings.model_copy(update={"llm": "ollama", "ollama_url": url})):
        yield c, url


@pytest.mark.parametrize("path", ["/ask", "/ask/stream"])
def test_ollama_down_is_a_json_503_naming_it(ollama_down: tuple[TestClient, str], path: str) -> None:
    client, url = ollama_down
    r = client.post(path, json=QUESTION)
    assert r.status_code == 503, r.text
    assert r.headers["content-type"].startswith("application/json")
    err = r.json()["error"]
    assert err["code"] == "model_unavailable"
    assert "Ollama" in err["message"] and url in err["message"]
    assert r.headers["retry-after"]
    assert client.get("/health").status_code == 200  # the connection and the server carry on


def _failing(exc: Exception) -> FunctionModel:
    def fn(_m: list[ModelMessage], _i: AgentInfo) -> ModelResponse:
        raise exc

    return FunctionModel(fn)


def test_a_model_that_stops_answering_mid_run_is_a_503(settings: Settings) -> None:
    model = _failing(httpx.ConnectError("connection refused"))
    for c in _client(settings, services_factory=lambda s: services_with(s, model)):
        r = c.post("/ask", json=QUESTION)
        assert r.status_code == 503, r.text
        assert "not answering" in r.json()["error"]["message"]


def test_a_bug_is_still_a_500_in_json_and_logged_with_its_request_id(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    model = _failing(ValueError("a bug"))
    for c in _client(settings, services_factory=lambda s: services_with(s, model)):
        r = c.post("/ask", json=QUESTION, headers={"X-Request-ID": "req-bug-1"})
        assert r.status_code == 500
        assert r.json()["error"]["code"] == "internal_error" and "req-bug-1" in r.json()["error"]["message"]
        assert any("req-bug-1" in rec.getMessage() and rec.exc_info for rec in caplog.records)
