"""The ingest contract: POST /errors, /errors/batch, reads, grouping into patterns."""

from __future__ import annotations

import random
import uuid

from tests.conftest import ADMIN_KEY, admin_headers


def event(**over):  # type: ignore[no-untyped-def]
    body = {
        "service": "ai-orchestrator",
        "context": "POST /generate",
        "error_type": "ConnectionError",
        "error_message": "Failed to connect to Ollama at 127.0.0.1:11434",
        "severity": "high",
    }
    body.update(over)
    return body


def test_post_error_is_stored_and_readable(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/errors", json=event(additional_data={"model": "qwen2.5:7b"}))
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["event_id"].startswith("ev_") and body["pattern_id"].startswith("pat_")
    ev = client.get(f"/events/{body['event_id']}").json()
    assert ev["service"] == "ai-orchestrator" and ev["additional_data"] == {"model": "qwen2.5:7b"}
    assert ev["pattern_id"] == body["pattern_id"]
    pat = client.get(f"/patterns/{body['pattern_id']}").json()
    assert pat["count"] == 1 and pat["samples"][0]["id"] == body["event_id"]
    assert pat["first_seen"] and pat["last_seen"] and pat["reason"].startswith("template:")


def _variant(kind: int, rng: random.Random) -> dict:  # type: ignore[type-arg]
    n = rng.randint(1, 10**6)
    if kind == 0:
        return event(
            error_message=f"Connection to 10.0.{n % 250}.{n % 7}:5432 refused after {n} ms (req {uuid.uuid4()})"
        )
    if kind == 1:
        return event(
            service="event-store",
            error_type="KeyError",
            error_message=f"'user_{n}'",
            stack_trace=(
                "Traceback (most recent call last):\n"
                f'  File "/srv/app/handlers.py", line {n % 300}, in load_user\n'
                "    return USERS[user_id]\n"
                f"KeyError: 'user_{n}'\n"
            ),
        )
    return event(
        service="collab",
        error_type="TimeoutError",
        error_message=f"Job {n} timed out after {n % 90}s at 2026-01-0{n % 9 + 1}T10:00:0{n % 9}Z",
    )


def test_300_events_of_3_errors_make_3_patterns(client) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(7)
    bodies = [_variant(i % 3, rng) for i in range(300)]
    rng.shuffle(bodies)
    pattern_of_kind: dict[int, set[str]] = {0: set(), 1: set(), 2: set()}
    for start in range(0, 300, 60):
        chunk = bodies[start : start + 60]
        r = client.post("/errors/batch", json={"errors": chunk})
        assert r.status_code == 202, r.text
        for b, res in zip(chunk, r.json()["results"], strict=True):
            kind = 1 if b["service"] == "event-store" else (2 if b["service"] == "collab" else 0)
            pattern_of_kind[kind].add(res["pattern_id"])
    assert all(len(v) == 1 for v in pattern_of_kind.values()), pattern_of_kind
    assert len(set().union(*pattern_of_kind.values())) == 3
    listing = client.get("/patterns").json()
    assert listing["count"] == 3 and sorted(p["count"] for p in listing["data"]) == [100, 100, 100]
    stack_pattern = next(p for p in listing["data"] if p["service"] == "event-store")
    assert stack_pattern["method"] == "stack"


def test_different_errors_get_different_patterns(client) -> None:  # type: ignore[no-untyped-def]
    a = client.post("/errors", json=event(error_message="disk full on /var/lib/postgresql")).json()
    b = client.post("/errors", json=event(error_message="permission denied opening socket")).json()
    c = client.post(
        "/errors", json=event(error_type="ValueError", error_message="disk full on /var/lib/postgresql")
    ).json()
    assert len({a["pattern_id"], b["pattern_id"], c["pattern_id"]}) == 3


def test_batch_reports_bad_items_by_index_and_keeps_good(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post(
        "/errors/batch", json={"errors": [event(), event(severity="apocalyptic"), "nope", event(service="")]}
    )
    assert r.status_code == 202
    res = r.json()
    assert res["accepted"] == 1 and res["rejected"] == 3
    assert res["results"][0]["status"] == "accepted"
    assert res["results"][1]["error"]["fields"][0]["field"] == "errors[1].severity"
    assert res["results"][2]["status"] == "rejected"
    assert res["results"][3]["error"]["fields"][0]["field"] == "errors[3].service"


def test_same_error_after_restart_joins_the_same_pattern(settings) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from agent.api.app import create_app
    from tests.conftest import INGEST_KEY

    h = {"Authorization": f"Bearer {INGEST_KEY}"}
    msgs = [f"user u{i} not found in shard {i % 4}" for i in range(5)]
    with TestClient(create_app(settings)) as c1:
        first = [c1.post("/errors", json=event(error_message=m), headers=h).json()["pattern_id"] for m in msgs]
    with TestClient(create_app(settings)) as c2:
        again = c2.post("/errors", json=event(error_message="user u999 not found in shard 3"), headers=h).json()
    assert len(set(first)) == 1 and again["pattern_id"] == first[0]


def test_auth_required_and_admin_separated(client) -> None:  # type: ignore[no-untyped-def]
    assert client.post("/errors", json=event(), headers={"Authorization": ""}).status_code == 401
    assert (
        client.post("/errors", json=event(), headers={"Authorization": "Bearer wrong-key-xxxxxxxxxxxx"}).status_code
        == 401
    )
    r = client.post("/reset-stats")
    assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
    assert client.post("/reset-stats", headers=admin_headers()).status_code == 200
    assert client.post("/errors", json=event(), headers={"Authorization": f"Bearer {ADMIN_KEY}"}).status_code == 202
    assert client.get("/health", headers={"Authorization": ""}).json()["database"] is True


def test_stats_and_reset_never_delete_events(client) -> None:  # type: ignore[no-untyped-def]
    client.post("/errors/batch", json={"errors": [event(), event(severity="low", service="svc-b"), {"bad": 1}]})
    s = client.get("/stats").json()
    assert s["since_reset"]["received"] == 2 and s["since_reset"]["rejected"] == 1
    assert s["since_reset"]["by_service"] == {"ai-orchestrator": 1, "svc-b": 1}
    assert s["since_start"]["received"] == 2 and s["since_start"]["by_severity"]["low"] == 1
    client.post("/reset-stats", headers=admin_headers())
    s2 = client.get("/stats").json()
    assert s2["since_reset"]["received"] == 0 and s2["since_reset"]["since"]
    assert client.get("/status").json()["events"] == 2


def test_analytics_trends_top_and_new_vs_recurring(client) -> None:  # type: ignore[no-untyped-def]
    for _ in range(3):
        client.post("/errors", json=event())
    client.post("/errors", json=event(service="collab", error_message="ws closed 1006"))
    a = client.get("/analytics?hours=2").json()
    assert sum(t["count"] for t in a["trends"]) == 4
    assert a["top_patterns"][0]["count"] == 3
    assert a["new_vs_recurring"] == {"new": 2, "recurring": 0}
    assert {s["service"] for s in a["per_service"]} == {"ai-orchestrator", "collab"}
    daily = client.get("/analytics?bucket=day").json()
    assert daily["trends"][0]["bucket"].endswith("T00:00:00Z")


def test_trigger_learning_is_recorded(client) -> None:  # type: ignore[no-untyped-def]
    r = client.post("/trigger-learning", headers=admin_headers())
    assert r.status_code == 202
    runs = client.get("/status").json()["learning_runs"]
    assert runs[0]["id"] == r.json()["run_id"] and runs[0]["trigger"] == "api"


def test_openapi_documents_the_event_body(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json()
    assert "EventCreate" in spec["components"]["schemas"]
    assert "/errors/batch" in spec["paths"]
    assert client.get("/docs").status_code == 200


def test_idempotency_key_makes_a_retried_batch_a_replay(client) -> None:  # type: ignore[no-untyped-def]
    body = {"errors": [event(), event(severity="low"), {"bad": 1}]}
    first = client.post("/errors/batch", json=body, headers={"Idempotency-Key": "batch-123"}).json()
    again = client.post("/errors/batch", json=body, headers={"Idempotency-Key": "batch-123"}).json()
    assert again == first and first["accepted"] == 2
    assert client.get("/status").json()["events"] == 2
    other = client.post("/errors/batch", json=body, headers={"Idempotency-Key": "batch-124"}).json()
    assert other["results"][0]["event_id"] != first["results"][0]["event_id"]
    assert client.post("/errors", json=event(), headers={"Idempotency-Key": "x" * 300}).status_code == 400
