"""Planted secrets of every kind never reach the database, the JSONL sink or API responses."""

from __future__ import annotations

from sqlalchemy import text

from tests.test_api_ingest import event

SECRETS = {
    "aws_key": "AKIAIOSFODNN7EXAMPLE",
    "bearer": "Bearer eyJraWQiOiJrMSJ9abcDEF1234567890ghijklmnop",
    "url_password": "postgres://app:S3cr3tPassw0rd@db.internal:5432/app",
    "key_value": "password=hunter2-very-secret",
    "pem": "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw\n-----END RSA PRIVATE KEY-----",
    "jwt": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "card": "4111 1111 1111 1111",
    "email": "jane.doe@example.com",
    "github": "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
}
NEEDLES = [
    "AKIAIOSFODNN7EXAMPLE",
    "eyJraWQiOiJrMSJ9abcDEF",
    "S3cr3tPassw0rd",
    "hunter2-very-secret",
    "MIIEowIBAAKCAQEAu1SU1",
    "dozjgNryP4J3jVmNHl0w5N",
    "4111 1111 1111 1111",
    "jane.doe@example.com",
    "ghp_16C7e42F292c6912E7710c838347Ae178B4a",
    "by-key-secret-value",
]


def test_planted_secrets_never_stored_sinked_or_returned(client, settings) -> None:  # type: ignore[no-untyped-def]
    responses = []
    for kind, secret in SECRETS.items():
        body = event(
            context=f"calling with {secret}",
            error_message=f"request failed ({kind}): {secret}",
            stack_trace=f'Traceback (most recent call last):\n  File "/app/x.py", line 1, in f\n    call("{secret}")\nValueError: {secret}\n',
            additional_data={
                "note": secret,
                "db_password": "by-key-secret-value",
                "nested": [{"token": "by-key-secret-value"}],
            },
        )
        r = client.post("/errors", json=body)
        assert r.status_code == 202, r.text
        eid = r.json()["event_id"]
        responses += [r.text, client.get(f"/events/{eid}").text, client.get(f"/patterns/{r.json()['pattern_id']}").text]
    responses += [client.get("/patterns").text, client.get("/analytics").text]
    engine = client.app.state.core.engine
    with engine.connect() as conn:
        dumped = repr(conn.execute(text("SELECT * FROM events")).all()) + repr(
            conn.execute(text("SELECT * FROM patterns")).all()
        )
    client.app.state.core.writer.sink.close()
    sink_text = "".join(p.read_text() for p in settings.sink_dir.glob("*.jsonl*"))
    assert sink_text, "the JSONL sink received the events"
    for needle in NEEDLES:
        assert needle not in dumped, f"{needle} stored in the database"
        assert needle not in sink_text, f"{needle} written to the JSONL sink"
        for resp in responses:
            assert needle not in resp, f"{needle} returned by the API"
    assert "[REDACTED:" in dumped and "[REDACTED:" in sink_text
