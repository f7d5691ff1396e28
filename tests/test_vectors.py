"""VectorStore against real Chroma (embedded and a real `chroma run` server) with the real wordllama embedder."""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
import socket
import subprocess  # noqa: TID251 - the test starts a real Chroma server and a fresh interpreter
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.domain import Severity
from agent.retrieval.embedders import Embedder, make_embedder
from agent.retrieval.text import error_embedding_text
from agent.store import vectors as vectors_module
from agent.store.vectors import (
    EmbedderMismatch,
    VectorStore,
    VectorStoreUnavailable,
    sanitise_metadata,
)
from tests.support import chroma_process, free_port

pytestmark = pytest.mark.slow

T0 = int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp())
DAY = 86_400

# (id, service, error type, template, in-app frames, severity, resolved, first seen day, last seen day)
# fmt: off
PATTERNS: list[tuple[str, str, str, str, list[str], str, bool, int, int]] = [
    ("p-db", "billing", "psycopg.OperationalError",
     "connection to server at <IP>, port <NUM> failed: Connection refused",
     ["billing.db.session.connect", "billing.invoices.repo.load_invoice", "billing.api.invoices.get"],
     "critical", False, 0, 30),
    ("p-key", "checkout", "KeyError", "'discount_code'",
     ["checkout.cart.apply_discount", "checkout.api.cart.update"], "medium", False, 3, 9),
    ("p-timeout", "search", "httpx.ReadTimeout", "timed out while reading from <IP>:<NUM>",
     ["search.backend.client.query", "search.api.search.handle"], "high", True, 1, 5),
    ("p-json", "ingest", "json.decoder.JSONDecodeError", "Expecting value: line <NUM> column <NUM> (char <NUM>)",
     ["ingest.parsers.payload.decode", "ingest.worker.consume"], "low", False, 10, 12),
    ("p-oom", "images", "MemoryError", "cannot allocate <NUM> bytes for thumbnail buffer",
     ["images.resize.thumbnail", "images.worker.process"], "critical", True, 2, 20),
    ("p-perm", "reports", "PermissionError", "[Errno <NUM>] Permission denied: '<PATH>'",
     ["reports.export.write_csv", "reports.jobs.nightly"], "medium", False, 4, 28),
    ("p-null", "accounts", "AttributeError", "'NoneType' object has no attribute 'email'",
     ["accounts.profile.send_welcome", "accounts.signup.complete"], "high", False, 6, 7),
    ("p-zero", "billing", "ZeroDivisionError", "division by zero",
     ["billing.tax.rate_per_item", "billing.invoices.totals"], "low", False, 8, 8),
]
# fmt: on


def pattern_text(service: str, error_type: str, template: str, frames: Sequence[str]) -> str:
    return error_embedding_text(service=service, error_type=error_type, template=template, frames=frames)


def fill(store: VectorStore) -> None:
    store.upsert(
        "patterns",
        [p[0] for p in PATTERNS],
        [pattern_text(p[1], p[2], p[3], p[4]) for p in PATTERNS],
        [
            {
                "service": p[1],
                "error_type": p[2],
                "severity": Severity(p[5]),
                "resolved": p[6],
                "first_seen": dt.datetime.fromtimestamp(T0 + p[7] * DAY, dt.UTC),
                "last_seen": dt.datetime.fromtimestamp(T0 + p[8] * DAY, dt.UTC),
                "sample_event_id": None,
            }
            for p in PATTERNS
        ],
    )


class FakeEmbedder:
    """Another embedder (different name and dimension), to provoke the mismatch."""

    name = "fake:sha256:8"
    dimension = 8
    max_tokens = 64

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        out = []
        for text in texts:
            raw = [b - 127.5 for b in hashlib.sha256(text.encode()).digest()[:8]]
            norm = sum(x * x for x in raw) ** 0.5
            out.append([x / norm for x in raw])
        return out


class NetworkGuard:
    """Refuses (and records) every connection or name lookup that is not on the loopback interface."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    @staticmethod
    def _is_local(host: Any) -> bool:
        if host in (None, "localhost", "", b"localhost"):
            return True
        try:
            return ipaddress.ip_address(host.decode() if isinstance(host, bytes) else str(host)).is_loopback
        except ValueError:
            return False

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        real_connect = socket.socket.connect
        real_getaddrinfo = socket.getaddrinfo
        real_create = socket.create_connection
        guard = self

        def connect(sock: socket.socket, address: Any) -> Any:
            if sock.family in (socket.AF_INET, socket.AF_INET6) and not guard._is_local(address[0]):
                guard.attempts.append(f"connect {address!r}")
                raise OSError(f"test blocked a network connection to {address!r}")
            return real_connect(sock, address)

        def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
            if not guard._is_local(host):
                guard.attempts.append(f"getaddrinfo {host!r}")
                raise socket.gaierror(f"test blocked a name lookup of {host!r}")
            return real_getaddrinfo(host, *args, **kwargs)

        def create_connection(address: Any, *args: Any, **kwargs: Any) -> Any:
            if not guard._is_local(address[0]):
                guard.attempts.append(f"create_connection {address!r}")
                raise OSError(f"test blocked a network connection to {address!r}")
            return real_create(address, *args, **kwargs)

        monkeypatch.setattr(socket.socket, "connect", connect)
        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(socket, "create_connection", create_connection)


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Chroma server (`chroma run`) on a free loopback port, for the whole module."""
    if not (Path(sys.executable).parent / "chroma").exists():
        pytest.skip(f"the `chroma` script is not next to {sys.executable}; install chromadb in this venv")
    with chroma_process(tmp_path_factory.mktemp("chroma-server")) as url:
        yield url


@pytest.fixture(scope="module")
def wordllama() -> Embedder:
    return make_embedder("wordllama")


@pytest.fixture(params=["embedded", "server"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, Any]:
    """Where the store lives: a fresh embedded folder, or the shared server with its collections emptied."""
    if request.param == "embedded":
        return {"path": tmp_path / "chroma"}
    url = request.getfixturevalue("chroma_server")
    client = httpx.Client(base_url=f"{url}/api/v2/tenants/default_tenant/databases/default_database")
    for name in vectors_module.COLLECTIONS:
        client.delete(f"/collections/{name}")  # 404 when absent is fine
    client.close()
    return {"url": url}


@pytest.fixture
def store(wordllama: Embedder, location: dict[str, Any]) -> VectorStore:
    opened = VectorStore.open(wordllama, **location)
    fill(opened)
    return opened


def test_new_occurrence_retrieves_its_pattern_first(store: VectorStore) -> None:
    # Same type and template as p-db, other call path (one frame differs, one more) and a new id scheme.
    new = pattern_text(
        "billing",
        "psycopg.OperationalError",
        "connection to server at <IP>, port <NUM> failed: Connection refused",
        ["billing.db.session.connect", "billing.payments.repo.load_payment", "billing.api.payments.get"],
    )
    hits = store.query("patterns", new, k=3)
    assert hits[0].id == "p-db"
    assert len(hits) == 3
    assert hits[0].score > 0.8
    assert hits[0].score > hits[1].score
    assert hits[0].metadata["service"] == "billing"
    assert "OperationalError" in hits[0].document

    unrelated = pattern_text(
        "mailer",
        "smtplib.SMTPAuthenticationError",
        "(<NUM>, b'Username and Password not accepted')",
        ["mailer.smtp.login", "mailer.outbox.flush"],
    )
    unrelated_hits = store.query("patterns", unrelated, k=len(PATTERNS))
    db_score = next(h.score for h in unrelated_hits if h.id == "p-db")
    assert db_score < hits[0].score - 0.2


def test_score_is_cosine_similarity(store: VectorStore, wordllama: Embedder) -> None:
    text = pattern_text(
        "checkout", "KeyError", "'discount_code'", ["checkout.cart.apply_discount", "checkout.api.cart.update"]
    )
    hits = store.query("patterns", text, k=len(PATTERNS))
    assert hits[0].id == "p-key"
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    query_vector = wordllama.embed([text])[0]
    stored = dict(
        zip([p[0] for p in PATTERNS], wordllama.embed([pattern_text(*p[1:5]) for p in PATTERNS]), strict=True)
    )
    for hit in hits:
        expected = sum(a * b for a, b in zip(query_vector, stored[hit.id], strict=True))
        assert hit.score == pytest.approx(expected, abs=1e-3)


def test_where_filters(store: VectorStore) -> None:
    query = pattern_text("billing", "psycopg.OperationalError", "connection refused", ["billing.db.session.connect"])
    assert {h.id for h in store.query("patterns", query, k=10, where={"service": "billing"})} == {"p-db", "p-zero"}
    unresolved_billing = store.query("patterns", query, k=10, where={"service": "billing", "resolved": False})
    assert {h.id for h in unresolved_billing} == {"p-db", "p-zero"}
    resolved = store.query("patterns", query, k=10, where={"resolved": True})
    assert {h.id for h in resolved} == {"p-timeout", "p-oom"}
    critical = store.query("patterns", query, k=10, where={"severity": {"$in": ["critical", "high"]}})
    assert {h.id for h in critical} == {"p-db", "p-timeout", "p-oom", "p-null"}
    recent = store.query("patterns", query, k=10, where={"last_seen": {"$gte": T0 + 20 * DAY}})
    assert {h.id for h in recent} == {"p-db", "p-oom", "p-perm"}
    window = store.query(
        "patterns",
        query,
        k=10,
        where={"$and": [{"first_seen": {"$gte": T0 + 3 * DAY}}, {"last_seen": {"$lte": T0 + 9 * DAY}}]},
    )
    assert {h.id for h in window} == {"p-key", "p-null", "p-zero"}
    assert store.query("patterns", query, k=10, where={"service": "nobody"}) == []


def test_exclude_ids_and_k(store: VectorStore) -> None:
    text = pattern_text(*PATTERNS[1][1:5])
    hits = store.query("patterns", text, k=2, exclude_ids=["p-key"])
    assert len(hits) == 2
    assert "p-key" not in {h.id for h in hits}
    assert store.query("patterns", text, k=0) == []
    assert len(store.query("patterns", text, k=100)) == len(PATTERNS)
    assert store.query("knowledge", text) == []  # empty collection


def test_metadata_is_sanitised_and_round_trips(store: VectorStore) -> None:
    hit = store.query("patterns", pattern_text(*PATTERNS[0][1:5]), k=1)[0]
    assert hit.metadata["severity"] == "critical"
    assert hit.metadata["resolved"] is False
    assert hit.metadata["last_seen"] == T0 + 30 * DAY
    assert "sample_event_id" not in hit.metadata  # None is dropped


def test_upsert_replaces_deletes_and_counts(store: VectorStore) -> None:
    assert store.count("patterns") == len(PATTERNS)
    assert store.count("knowledge") == 0
    store.upsert(
        "patterns",
        ["p-zero"],
        ["ZeroDivisionError: float division by zero"],
        [{"service": "billing", "resolved": True}],
    )
    assert store.count("patterns") == len(PATTERNS)
    hit = store.query("patterns", "ZeroDivisionError: float division by zero", k=1)[0]
    assert (hit.id, hit.metadata["resolved"]) == ("p-zero", True)
    store.delete("patterns", ["p-zero", "p-oom"])
    store.delete("patterns", [])
    assert store.count("patterns") == len(PATTERNS) - 2


def test_knowledge_collection_is_separate(store: VectorStore) -> None:
    store.upsert(
        "knowledge",
        ["ERROR-001", "ERROR-002"],
        [
            "Database connection refused: check that PostgreSQL is running and the pool size",
            "Disk full: remove old logs and container images",
        ],
        [{"kind": "guide"}, {}],
    )
    hits = store.query("knowledge", "postgres connection refused by server", k=1)
    assert hits[0].id == "ERROR-001"
    assert hits[0].metadata == {"kind": "guide"}
    assert store.count("knowledge") == 2
    assert store.count("patterns") == len(PATTERNS)


def test_reopen_with_another_embedder_raises_then_reset_rebuilds(
    store: VectorStore, location: dict[str, Any], wordllama: Embedder
) -> None:
    other = VectorStore.open(FakeEmbedder(), **location)
    with pytest.raises(EmbedderMismatch) as info:
        other.count("patterns")
    message = str(info.value)
    assert "wordllama:l2_supercat:256" in message
    assert "fake:sha256:8" in message
    assert "errlearn reindex" in message

    other.reset("patterns")
    assert other.count("patterns") == 0
    other.upsert("patterns", ["x"], ["anything"], [None])
    assert other.query("patterns", "anything", k=1)[0].score == pytest.approx(1.0, abs=1e-4)

    # And now the wordllama store is the one that is out of date.
    with pytest.raises(EmbedderMismatch, match="fake:sha256:8"):
        VectorStore.open(wordllama, **location).count("patterns")


def test_whole_lifecycle_offline_never_downloads(location: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Load the embedder, create, fill, reopen, query and reset with every non-loopback socket refused."""
    import chromadb
    from chromadb.api.shared_system_client import SharedSystemClient

    guard = NetworkGuard()
    guard.install(monkeypatch)

    # Chroma's default embedding function must never run: it would download an ONNX model.
    def refuse(self: object, input: object) -> object:
        raise AssertionError("Chroma's default embedding function was called")

    monkeypatch.setattr(chromadb.api.types.DefaultEmbeddingFunction, "__call__", refuse)
    SharedSystemClient.clear_system_cache()  # no client cached by earlier tests

    created = VectorStore.open(make_embedder("wordllama"), **location)
    fill(created)  # creates both collections on first use
    assert created.count("knowledge") == 0

    SharedSystemClient.clear_system_cache()  # a real reopen, not the cached client of `created`
    reopened = VectorStore.open(make_embedder("wordllama"), **location)
    assert reopened.count("patterns") == len(PATTERNS)
    hits = reopened.query("patterns", pattern_text(*PATTERNS[3][1:5]), k=1, where={"resolved": False})
    assert hits[0].id == "p-json"
    reopened.upsert("knowledge", ["k1"], ["a guide entry"], [{"title": "t"}])
    assert reopened.query("knowledge", "guide", k=1)[0].id == "k1"
    reopened.reset("knowledge")
    assert reopened.count("knowledge") == 0
    assert guard.attempts == []


def test_fresh_process_reopens_offline(tmp_path: Path, wordllama: Embedder) -> None:
    """A new interpreter (empty embedding-function registry) reopens and queries with the network blocked."""
    path = tmp_path / "chroma"
    fill(VectorStore.open(wordllama, path=path))
    script = textwrap.dedent(
        f"""
        import socket, ipaddress
        def blocked(*args, **kwargs):
            raise OSError("network blocked in this test")
        real_connect = socket.socket.connect
        def connect(sock, address):
            if sock.family in (socket.AF_INET, socket.AF_INET6):
                if not ipaddress.ip_address(address[0]).is_loopback:
                    raise OSError("network blocked in this test")
            return real_connect(sock, address)
        socket.socket.connect = connect
        socket.create_connection = blocked
        from pathlib import Path
        from agent.retrieval.embedders import make_embedder
        from agent.store.vectors import VectorStore
        store = VectorStore.open(make_embedder("wordllama"), path=Path({str(path)!r}))
        print(store.query("patterns", "KeyError: 'discount_code' at cart.apply_discount", k=1)[0].id)
        """
    )
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "p-key"


def test_collection_made_with_chromas_default_function_is_a_mismatch(tmp_path: Path, wordllama: Embedder) -> None:
    import chromadb
    from chromadb.config import Settings

    path = tmp_path / "chroma"
    # Same settings as VectorStore: Chroma refuses two clients of one folder with different settings.
    client = chromadb.PersistentClient(path=str(path), settings=Settings(anonymized_telemetry=False))
    client.create_collection("patterns")  # with Chroma's default embedding function
    with pytest.raises(EmbedderMismatch, match="errlearn reindex"):
        VectorStore.open(wordllama, path=path).count("patterns")


def test_upsert_batches_and_keeps_the_last_duplicate(
    tmp_path: Path, wordllama: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vectors_module, "MAX_BATCH", 3)
    store = VectorStore.open(wordllama, path=tmp_path / "chroma")
    ids = [f"e{i}" for i in range(10)] + ["e0"]
    docs = [f"ValueError: bad value {i}" for i in range(10)] + ["TypeError: replaced"]
    store.upsert("patterns", ids, docs, [{"i": i} for i in range(11)])
    assert store.count("patterns") == 10
    hit = store.query("patterns", "TypeError: replaced", k=1)[0]
    assert (hit.id, hit.metadata["i"]) == ("e0", 10)
    with pytest.raises(ValueError, match="differ in length"):
        store.upsert("patterns", ["a"], [], [])


def test_sanitise_metadata() -> None:
    naive = dt.datetime(2026, 1, 1, 0, 0, 10)
    clean = sanitise_metadata(
        {"a": None, "b": Severity.high, "c": naive, "d": float("nan"), "e": [1, 2], "f": 1.5, "g": True, "h": "x"}
    )
    assert clean == {"b": "high", "c": T0 + 10, "e": "[1, 2]", "f": 1.5, "g": True, "h": "x"}
    assert sanitise_metadata(None) == {}


def test_open_needs_exactly_one_location(wordllama: Embedder, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        VectorStore.open(wordllama)
    with pytest.raises(ValueError, match="exactly one"):
        VectorStore.open(wordllama, path=tmp_path, url="http://127.0.0.1:8000")
    with pytest.raises(ValueError, match=r"http://127\.0\.0\.1:8000"):
        VectorStore.open(wordllama, url="ftp://x")


def test_unreachable_server_names_the_url(wordllama: Embedder) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(VectorStoreUnavailable, match=url.replace(".", r"\.")):
        VectorStore.open(wordllama, url=url)


def test_a_failing_filtered_query_ranks_the_filtered_records_directly(
    store: VectorStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chroma's filtered HNSW search can fail with "Error finding id" (chroma-core/chroma#7032): a 500 on
    `/patterns/{id}/similar?severity=high` in schemathesis. The same filter ranked exactly gives the same hits."""
    from chromadb.api.models.Collection import Collection
    from chromadb.errors import InternalError

    fill(store)
    query = pattern_text("billing", "psycopg.OperationalError", "connection refused", ["billing.db.session.connect"])
    where = {"severity": "critical"}
    expected = store.query("patterns", query, k=3, where=where, exclude_ids=["p-oom"])
    real_query = Collection.query

    def broken(self: Collection, *args: Any, **kwargs: Any) -> Any:
        if kwargs.get("where"):
            raise InternalError("Error executing plan: Internal error: Error finding id")
        return real_query(self, *args, **kwargs)

    monkeypatch.setattr(Collection, "query", broken)
    got = store.query("patterns", query, k=3, where=where, exclude_ids=["p-oom"])
    assert [h.id for h in got] == [h.id for h in expected] == ["p-db"]
    assert got[0].score == pytest.approx(expected[0].score, abs=1e-4)
    with pytest.raises(InternalError):  # without a filter there is nothing to fall back to
        monkeypatch.setattr(Collection, "query", lambda *a, **k: (_ for _ in ()).throw(InternalError("boom")))
        store.query("patterns", query, k=3)


def test_the_query_embedding_cache_has_a_max_size(tmp_path: Path) -> None:
    """A long-running server asks for many distinct query texts: the cache of their vectors must stay bounded."""
    store = VectorStore.open(FakeEmbedder(), path=tmp_path / "chroma")
    for i in range(500):
        store._query_vector(f"query {i}")
    assert len(store._query_cache) <= 64
    assert "query 499" in store._query_cache, "the newest are the ones kept"
    assert "query 0" not in store._query_cache
