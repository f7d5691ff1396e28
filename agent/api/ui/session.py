"""UI sessions: a signed cookie holding the role (never the key), a CSRF token and an expiry.

The cookie is `base64url(json) "." base64url(HMAC-SHA256(secret, json))`. The secret is generated into the
data dir on first use (mode 0600), so sessions survive restarts and every process sharing the data dir
accepts them. A session also records a fingerprint of the key it was opened with (an HMAC, not the key):
when that key is removed or rotated, its sessions stop working at once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from agent.keys import KeyRing, Role

SECRET_FILE = "ui_secret"
SESSION_COOKIE = "errlearn_ui"
PRE_COOKIE = "errlearn_ui_pre"
"""Before login: carries only the login form's CSRF token (a separate cookie, so that opening the login page
never overwrites a live session cookie the browser did not send on a cross-site navigation)."""
FLASH_COOKIE = "errlearn_ui_flash"
COOKIE_PATH = "/ui"
PRE_SECONDS = 30 * 60
FLASH_SECONDS = 120
MAX_COOKIE_CHARS = 3500


def load_or_create_secret(data_dir: Path) -> bytes:
    """The signing secret of this data dir (32 random bytes, created once, mode 0600)."""
    path = data_dir / SECRET_FILE
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first: use theirs
            raw = path.read_bytes()
        else:
            raw = secrets.token_hex(32).encode()
            with os.fdopen(fd, "wb") as fh:
                fh.write(raw)
    secret = raw.strip()
    if len(secret) < 32:
        raise RuntimeError(f"{path} is too short to sign sessions; delete it and restart")
    return secret


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Session:
    """A signed-in browser. `role` is None only for the pre-login cookie."""

    csrf: str
    expires: int
    role: Role | None = None
    kid: str | None = None
    """Fingerprint of the key the session was opened with (HMAC of the key under the secret)."""
    name: str = ""
    """Who the reviewer said they are; recorded as `by`/actor of review actions."""
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(12))

    @property
    def admin(self) -> bool:
        return self.role is Role.admin

    @property
    def actor(self) -> str:
        return self.name or ("admin" if self.admin else "ui")


class Signer:
    """Signs and verifies cookie values, and fingerprints keys, with the data dir's secret."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def _mac(self, purpose: bytes, payload: bytes) -> bytes:
        return hmac.new(self._secret, purpose + b"\0" + payload, hashlib.sha256).digest()

    def dumps(self, purpose: str, data: dict[str, Any]) -> str:
        payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(payload)}.{_b64(self._mac(purpose.encode(), payload))}"

    def loads(self, purpose: str, value: str | None) -> dict[str, Any] | None:
        """The signed data, or None when the value is missing, malformed or not signed by us."""
        if not value or len(value) > MAX_COOKIE_CHARS or value.count(".") != 1:
            return None
        body, mac = value.split(".")
        try:
            payload, presented = _unb64(body), _unb64(mac)
        except ValueError:
            return None
        if not hmac.compare_digest(presented, self._mac(purpose.encode(), payload)):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def key_id(self, key: str) -> str:
        return self._mac(b"key", key.encode()).hex()[:24]


class Sessions:
    """Reads and writes the UI cookies of a request/response pair."""

    def __init__(self, signer: Signer, *, hours: float) -> None:
        self.signer = signer
        self.seconds = int(hours * 3600)

    # -- opening -----------------------------------------------------------------------------------
    def login(self, keys: KeyRing, presented: str, name: str = "") -> Session | None:
        """A new session for a valid key (fresh id and CSRF token), or None."""
        role = keys.role_of(presented)
        if role is None:
            return None
        return Session(
            csrf=secrets.token_urlsafe(24),
            expires=int(time.time()) + self.seconds,
            role=role,
            kid=self.signer.key_id(presented),
            name=name,
        )

    def new_pre(self) -> Session:
        return Session(csrf=secrets.token_urlsafe(24), expires=int(time.time()) + PRE_SECONDS)

    # -- reading ----------------------------------------------------------------------------------
    def _valid_kids(self, keys: KeyRing) -> dict[str, Role]:
        kids = {self.signer.key_id(k): Role.ingest for k in keys.ingest}
        if keys.admin is not None:
            kids[self.signer.key_id(keys.admin)] = Role.admin
        return kids

    def _decode(self, purpose: str, value: str | None) -> Session | None:
        data = self.signer.loads(purpose, value)
        if data is None:
            return None
        try:
            role = Role(data["role"]) if data.get("role") else None
            session = Session(
                csrf=str(data["csrf"]),
                expires=int(data["expires"]),
                role=role,
                kid=data.get("kid"),
                name=str(data.get("name", "")),
                sid=str(data["sid"]),
            )
        except (KeyError, ValueError, TypeError):
            return None
        return session if session.expires > time.time() else None

    def current(self, request: Request, keys: KeyRing) -> Session | None:
        """The signed-in session, if the cookie is valid, unexpired and its key still grants that role."""
        session = self._decode("session", request.cookies.get(SESSION_COOKIE))
        if session is None or session.role is None or session.kid is None:
            return None
        if self._valid_kids(keys).get(session.kid) is not session.role:
            return None
        return session

    def pre(self, request: Request) -> Session | None:
        return self._decode("pre", request.cookies.get(PRE_COOKIE))

    def pop_flash(self, request: Request) -> str | None:
        data = self.signer.loads("flash", request.cookies.get(FLASH_COOKIE))
        if not data or float(data.get("until", 0)) < time.time():
            return None
        return str(data.get("text", ""))[:1000] or None

    # -- writing ----------------------------------------------------------------------------------
    @staticmethod
    def _secure(request: Request) -> bool:
        # Behind an https proxy uvicorn reports the scheme from X-Forwarded-Proto (with --proxy-headers).
        return request.url.scheme == "https"

    def _set(self, response: Response, request: Request, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=COOKIE_PATH,
            httponly=True,
            samesite="strict",
            secure=self._secure(request),
        )

    def save(self, response: Response, request: Request, session: Session) -> None:
        data = {k: v for k, v in asdict(session).items() if v not in (None, "")}
        if session.role is None:
            self._set(response, request, PRE_COOKIE, self.signer.dumps("pre", data), PRE_SECONDS)
        else:
            remaining = max(1, session.expires - int(time.time()))
            self._set(response, request, SESSION_COOKIE, self.signer.dumps("session", data), remaining)

    def flash(self, response: Response, request: Request, text: str) -> None:
        value = self.signer.dumps("flash", {"text": text[:1000], "until": time.time() + FLASH_SECONDS})
        self._set(response, request, FLASH_COOKIE, value, FLASH_SECONDS)

    def clear(self, response: Response, request: Request, *names: str) -> None:
        for name in names or (SESSION_COOKIE, PRE_COOKIE, FLASH_COOKIE):
            response.delete_cookie(
                name, path=COOKIE_PATH, httponly=True, samesite="strict", secure=self._secure(request)
            )
