"""UI sign-in, sessions and CSRF: pages need a session, every POST needs the session's token, admin actions
need an admin session."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from agent.api.ui import ROUTERS
from agent.api.ui import session as ui_session
from agent.api.ui.auth import safe_next
from agent.bootstrap import Services
from agent.keys import KeyRing
from agent.settings import Settings
from tests.conftest import ADMIN_KEY, INGEST_KEY
from tests.test_ui_support import Seeded, Wiring, csrf_of, entry, login, proposal, ui, ui_app

__all__ = ["ui"]  # the seeded fixture, re-exported for pytest

PAGES = ["/ui", "/ui/patterns", "/ui/patterns/pat_x", "/ui/events/ev_x", "/ui/guide", "/ui/ask", "/ui/recovery"]


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    """An unseeded app on SQLite (auth does not depend on the database)."""
    settings = Settings(
        data_dir=tmp_path / "data",
        api_keys=[INGEST_KEY],  # type: ignore[list-item]
        admin_key=ADMIN_KEY,  # type: ignore[arg-type]
        worker=False,
    )
    return ui_app(settings, Wiring(guide=False, recovery=False))


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, follow_redirects=False) as c:
        yield c


def ui_posts() -> list[str]:
    """Every POST route of the UI's routers, with its path parameters filled in."""
    fill = {"{entry_id}": "ERROR-001", "{proposal_id}": "1", "{pattern_id}": "pat_0123456789abcdef"}
    out = []
    for route in (r for router in ROUTERS for r in router.routes):
        if isinstance(route, APIRoute) and "POST" in (route.methods or set()):
            assert route.path.startswith("/ui/"), route.path
            path = route.path
            for key, value in fill.items():
                path = path.replace(key, value)
            assert "{" not in path, f"fill in the parameters of {route.path}"
            out.append(path)
    return out


def test_pages_without_a_session_redirect_to_login(client: TestClient) -> None:
    for page in PAGES:
        r = client.get(page, params={"q": "x"} if page == "/ui/patterns" else None)
        assert r.status_code == 303, page
        assert r.headers["location"].startswith("/ui/login?next=%2Fui"), r.headers["location"]
    assert client.get("/ui/patterns?q=x").headers["location"] == "/ui/login?next=%2Fui%2Fpatterns%3Fq%3Dx"
    htmx = client.get("/ui/partials/status", headers={"HX-Request": "true"})
    assert htmx.status_code == 204 and htmx.headers["HX-Redirect"].startswith("/ui/login")
    login_page = client.get("/ui/login")
    assert login_page.status_code == 200 and 'type="password"' in login_page.text
    assert "default-src 'none'" in login_page.headers["content-security-policy"]


def test_login_sets_a_signed_strict_httponly_cookie_without_the_key(client: TestClient) -> None:
    token = csrf_of(client.get("/ui/login").text)
    bad = client.post("/ui/login", data={"key": "wrong-key-0123456789", "csrf_token": token})
    assert bad.status_code == 401 and "not valid" in bad.text
    r = client.post("/ui/login", data={"key": ADMIN_KEY, "name": "alice", "csrf_token": token, "next": "/ui/guide"})
    assert r.status_code == 303 and r.headers["location"] == "/ui/guide"
    cookies = r.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookies if c.startswith(f"{ui_session.SESSION_COOKIE}="))
    attrs = session_cookie.lower()
    assert "httponly" in attrs and "samesite=strict" in attrs and "path=/ui" in attrs
    assert "secure" not in attrs  # plain http here; see the https test
    assert ADMIN_KEY not in session_cookie
    assert client.get("/ui").status_code == 200
    assert "alice" in client.get("/ui/guide").text


def test_cookie_is_secure_behind_https(app: FastAPI) -> None:
    with TestClient(app, base_url="https://errlearn.example", follow_redirects=False) as c:
        token = csrf_of(c.get("/ui/login").text)
        r = c.post("/ui/login", data={"key": INGEST_KEY, "csrf_token": token})
    assert r.status_code == 303
    assert all("secure" in c.lower() for c in r.headers.get_list("set-cookie"))


def test_every_ui_form_refuses_a_missing_or_foreign_token(app: FastAPI, client: TestClient) -> None:
    posts = ui_posts()
    assert {"/ui/login", "/ui/logout", "/ui/ask", "/ui/ask/stream", "/ui/guide/ERROR-001/approve"} <= set(posts)
    assert "/ui/recovery/proposals/1/approve" in posts and "/ui/patterns/pat_0123456789abcdef/diagnose" in posts
    for path in posts:  # signed out
        assert client.post(path, data={"x": "1"}).status_code == 403, path
    token = login(client)
    with TestClient(app, follow_redirects=False) as other:
        foreign = login(other)
    assert foreign != token
    for path in posts:  # signed in as admin: no token, a wrong one, another session's, a cross-site request
        assert client.post(path, data={"reason": "x"}).status_code == 403, path
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 403, path
        assert client.post(path, data={"csrf_token": foreign}).status_code == 403, path
        cross = client.post(path, data={"csrf_token": token}, headers={"Sec-Fetch-Site": "cross-site"})
        assert cross.status_code == 403, path
    refused = client.post("/ui/logout", data={})
    assert "Form refused" in refused.text and refused.headers["content-type"].startswith("text/html")
    json_body = client.post("/ui/logout", json={"csrf_token": token})
    assert json_body.status_code == 403  # only form bodies (or the header) carry the token
    assert client.post("/ui/logout", headers={"X-CSRF-Token": token}).status_code == 303


def test_ingest_sessions_cannot_approve(ui: tuple[TestClient, Services, Seeded]) -> None:
    client, services, seeded = ui
    token = login(client, INGEST_KEY, name="bob")
    draft = seeded.drafts[0]
    assert client.get("/ui/guide").status_code == 200  # reading is fine
    assert "Approve draft" not in client.get(f"/ui/guide/{draft}").text
    for path, data in [
        (f"/ui/guide/{draft}/approve", {}),
        (f"/ui/guide/{draft}/reject", {"reason": "no"}),
        (f"/ui/guide/{draft}/edit", {"title": "changed"}),
        (f"/ui/guide/{draft}/merge", {"into": seeded.drafts[1]}),
        (f"/ui/recovery/proposals/{seeded.proposal}/approve", {}),
        (f"/ui/recovery/proposals/{seeded.proposal}/deny", {"reason": "no"}),
        (f"/ui/patterns/{seeded.api}/diagnose", {}),
    ]:
        r = client.post(path, data={**data, "csrf_token": token})
        assert r.status_code == 403 and "admin key" in r.text, path
    assert client.get("/ui/recovery").status_code == 403
    assert entry(services, draft).status.value == "draft"
    assert proposal(services, seeded.proposal).status.value == "proposed"


def _only_cookie(client: TestClient, value: str) -> None:
    """Replace every cookie with this session cookie value."""
    client.cookies.clear()
    client.cookies.set(ui_session.SESSION_COOKIE, value)


def test_tampered_expired_and_revoked_sessions_are_signed_out(app: FastAPI, client: TestClient) -> None:
    login(client)
    client.get("/ui/login")  # signed in, the login page still hands out a pre-login cookie
    value = client.cookies[ui_session.SESSION_COOKIE]
    pre = client.cookies.get(ui_session.PRE_COOKIE) or ""
    body, mac = value.split(".")
    # Flip the role inside a validly encoded payload: the MAC no longer matches.
    forged = ui_session._b64(ui_session._unb64(body).replace(b'"admin"', b'"ingest"')) + "." + mac
    _only_cookie(client, forged)
    assert client.get("/ui").status_code == 303
    # A pre-login cookie is signed for another purpose: it does not open a session.
    assert pre
    _only_cookie(client, pre)
    assert client.get("/ui").status_code == 303
    _only_cookie(client, value)
    assert client.get("/ui").status_code == 200
    # The same session, validly signed, but past its expiry.
    signer = app.state.ui.sessions.signer
    data = signer.loads("session", value)
    assert data["expires"] - time.time() == pytest.approx(12 * 3600, abs=60)  # the default lifetime
    _only_cookie(client, signer.dumps("session", {**data, "expires": int(time.time()) - 1}))
    assert client.get("/ui").status_code == 303
    _only_cookie(client, value)
    assert client.get("/ui").status_code == 200
    app.state.keys = KeyRing((INGEST_KEY,), "a-new-admin-key-0123456789")  # the admin key was rotated
    assert client.get("/ui").status_code == 303


def test_logout_and_login_edge_cases(client: TestClient) -> None:
    token = login(client)
    r = client.post("/ui/logout", data={"csrf_token": token})
    assert r.status_code == 303 and r.headers["location"] == "/ui/login?signed_out=1"
    assert client.get("/ui").status_code == 303
    pre = csrf_of(client.get("/ui/login?signed_out=1").text)
    weird = client.post("/ui/login", data={"key": ADMIN_KEY, "name": "<script>", "csrf_token": pre})
    assert weird.status_code == 422 and "<script>" not in weird.text
    evil = client.post("/ui/login", data={"key": ADMIN_KEY, "csrf_token": pre, "next": "//evil.example/x"})
    assert evil.headers["location"] == "/ui"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/ui/patterns?q=a", "/ui/patterns?q=a"),
        ("/ui", "/ui"),
        ("//evil.example", "/ui"),
        ("https://evil.example/ui", "/ui"),
        ("/\\evil.example", "/ui"),
        ("/uix", "/ui"),
        ("/docs", "/ui"),
        (None, "/ui"),
    ],
)
def test_safe_next_stays_inside_the_ui(target: str | None, expected: str) -> None:
    assert safe_next(target) == expected


def test_failed_logins_are_throttled(client: TestClient) -> None:
    token = csrf_of(client.get("/ui/login").text)
    codes = [client.post("/ui/login", data={"key": f"wrong-{i}", "csrf_token": token}).status_code for i in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    # Even the right key waits now: guessing cannot continue by interleaving a valid key.
    assert client.post("/ui/login", data={"key": ADMIN_KEY, "csrf_token": token}).status_code == 429


def test_secret_is_generated_once_with_private_mode(tmp_path: Path) -> None:
    first = ui_session.load_or_create_secret(tmp_path)
    assert ui_session.load_or_create_secret(tmp_path) == first
    assert (tmp_path / ui_session.SECRET_FILE).stat().st_mode & 0o777 == 0o600
    signer = ui_session.Signer(first)
    value = signer.dumps("session", {"role": "admin"})
    assert signer.loads("session", value) == {"role": "admin"}
    assert signer.loads("pre", value) is None
    assert signer.loads("session", value + "x") is None
    assert ui_session.Signer(b"0" * 64).loads("session", value) is None
    assert re.fullmatch(r"[0-9a-f]{24}", signer.key_id(ADMIN_KEY))
