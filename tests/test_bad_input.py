"""Every class of bad input gets a clear 4xx naming the problem, and stored data is unchanged."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text

from tests.test_api_ingest import event


def _fingerprint(client) -> str:  # type: ignore[no-untyped-def]
    """A digest of everything stored: events and patterns."""
    engine = client.app.state.core.engine
    with engine.connect() as conn:
        ev = conn.execute(text("SELECT id, pattern_id, error_message, stack_trace FROM events ORDER BY id")).all()
        pt = conn.execute(text("SELECT id, count, template FROM patterns ORDER BY id")).all()
    return hashlib.sha256(repr((ev, pt)).encode()).hexdigest()


CASES = [
    ("malformed json", b'{"service": "a", ', 400, "invalid_json", None),
    ("empty body", b"", 400, "empty_body", None),
    ("invalid utf-8", b'{"service": "\xff\xfe", "error_type": "E"}', 400, "invalid_utf8", None),
    ("not an object", b"[1, 2, 3]", 422, "validation_error", "body"),
    ("wrong type", json.dumps(event(error_message=123)).encode(), 422, "validation_error", "error_message"),
    ("unknown severity", json.dumps(event(severity="apocalyptic")).encode(), 422, "validation_error", "severity"),
    ("empty service", json.dumps(event(service="")).encode(), 422, "validation_error", "service"),
    ("service with slash", json.dumps(event(service="../../etc")).encode(), 422, "validation_error", "service"),
    (
        "missing error_type",
        json.dumps({k: v for k, v in event().items() if k != "error_type"}).encode(),
        422,
        "validation_error",
        "error_type",
    ),
    (
        "future timestamp",
        json.dumps(event(timestamp="2999-01-01T00:00:00Z")).encode(),
        422,
        "validation_error",
        "timestamp",
    ),
    (
        "additional_data not object",
        json.dumps(event(additional_data=[1])).encode(),
        422,
        "validation_error",
        "additional_data",
    ),
]


@pytest.mark.parametrize(("name", "raw", "status", "code", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_single_event(client, name, raw, status, code, field) -> None:  # type: ignore[no-untyped-def]
    client.post("/errors", json=event())  # some data that must stay untouched
    before = _fingerprint(client)
    r = client.post("/errors", content=raw, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and err["message"]
    if field:
        assert any(f["field"].endswith(field) for f in err["fields"]), err
    assert _fingerprint(client) == before
    assert client.get("/stats").json()["since_start"]["rejected"] >= 1


def test_body_over_limit_is_413_and_nothing_stored(client) -> None:  # type: ignore[no-untyped-def]
    before = _fingerprint(client)
    big = event(error_message="x" * (1024 * 1024 + 10))
    r = client.post("/errors", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "too_large"
    assert _fingerprint(client) == before


def test_body_over_limit_without_content_length_is_413(client) -> None:  # type: ignore[no-untyped-def]
    def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b"x" * 32768

    r = client.post("/errors", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413


def test_batch_over_count_limit(client) -> None:  # type: ignore[no-untyped-def]
    before = _fingerprint(client)
    r = client.post("/errors/batch", json={"errors": [event()] * 1001})
    assert r.status_code == 413 and r.json()["error"]["code"] == "batch_too_large"
    assert _fingerprint(client) == before


def test_batch_without_errors_array(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/errors/batch", json={"events": []})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "errors"


def test_all_invalid_batch_is_422_with_per_item_errors(client) -> None:  # type: ignore[no-untyped-def]
    before = _fingerprint(client)
    r = client.post("/errors/batch", json={"errors": [{"x": 1}, event(severity="nope")]})
    assert r.status_code == 422 and r.json()["rejected"] == 2
    assert _fingerprint(client) == before


def test_long_stack_trace_is_truncated_and_marked_not_rejected(client) -> None:  # type: ignore[no-untyped-def]
    head = "Traceback (most recent call last):\n"
    frames = "".join(f'  File "/srv/app/m{i}.py", line {i}, in f{i}\n    x()\n' for i in range(3000))
    stack = head + frames + "RuntimeError: boom\n"
    assert len(stack) > 64 * 1024
    r = client.post("/errors", json=event(stack_trace=stack))
    assert r.status_code == 202
    ev = client.get(f"/events/{r.json()['event_id']}").json()
    assert ev["stack_truncated"] is True
    assert len(ev["stack_trace"].encode()) < 64 * 1024 + 200
    assert ev["stack_trace"].startswith(head) and ev["stack_trace"].rstrip().endswith("RuntimeError: boom")
    assert "truncated" in ev["stack_trace"]


def test_unknown_ids_are_404_json(client) -> None:  # type: ignore[no-untyped-def]
    for path in ("/events/ev_nope", "/patterns/pat_nope"):
        r = client.get(path)
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_bad_query_parameters_are_422(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/patterns?limit=100000").status_code == 422
    assert client.get("/patterns?severity=extreme").status_code == 422
    assert client.get("/analytics?bucket=week").status_code == 422


def test_gzip_body_is_accepted_and_bombs_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    import gzip

    body = gzip.compress(json.dumps({"errors": [event(), event()]}).encode())
    r = client.post(
        "/errors/batch", content=body, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"}
    )
    assert r.status_code == 202 and r.json()["accepted"] == 2
    before = _fingerprint(client)
    bomb = gzip.compress(b"[" + b" " * (20 * 1024 * 1024) + b"]")
    assert len(bomb) < 1024 * 1024
    r = client.post("/errors/batch", content=bomb, headers={"Content-Encoding": "gzip"})
    assert r.status_code == 413
    r = client.post("/errors", content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_gzip"
    r = client.post("/errors", content=b"{}", headers={"Content-Encoding": "br"})
    assert r.status_code == 415
    assert _fingerprint(client) == before
