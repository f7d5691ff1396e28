"""One HTTP request per batch to `POST /errors/batch`, and what its answer means for the batch.

Stdlib `http.client` on one kept-alive connection: the SDK adds no dependency (orjson only when installed) and costs
no event loop. Only the sender thread uses a transport.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from errlearn_sdk import _json
from errlearn_sdk._version import __version__

if TYPE_CHECKING:  # http.client, ssl and gzip load with the first send: `import errlearn_sdk` stays cheap
    import http.client

USER_AGENT = f"errlearn-python/{__version__}"
log = logging.getLogger("errlearn.sdk")


class Outcome(Enum):
    """What the sender should do with a batch after one attempt."""

    DELIVERED = "delivered"
    """2xx: the server took the batch (some events may still be rejected one by one)."""
    RETRY = "retry"
    """429, 5xx, connection error or timeout: try again later, then spool."""
    TOO_LARGE = "too_large"
    """413: split the batch in halves."""
    UNAUTHORIZED = "unauthorized"
    """401/403: a bad key; retrying cannot help."""
    INVALID = "invalid"
    """Any other 4xx (400, 422, 404...): the body or the URL is wrong; retrying cannot help."""


@dataclass(frozen=True, slots=True)
class SendResult:
    outcome: Outcome
    status: int | None = None
    accepted: int | None = None
    """Events the server took; None when a 2xx answer did not say (then the whole batch counts as sent)."""
    rejected: int = 0
    retry_after: float | None = None
    detail: str = ""
    """A short description for logs (the error, or the first rejection)."""


def batch_body(lines: list[bytes]) -> bytes:
    """The request body from already-serialised events (no re-encoding)."""
    return b'{"errors":[' + b",".join(lines) + b"]}"


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:  # an HTTP date; rare enough to fall back to our own backoff
        return None


class HttpTransport:
    """Posts batch bodies to one errlearn server."""

    def __init__(self, url: str, key: str, *, timeout: float, compress: bool = False) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = parts.path.rstrip("/") + "/errors/batch"
        self._timeout = timeout
        self._compress = compress
        self._headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        import http.client

        if self._conn is None:
            if self._https:
                import ssl

                self._conn = http.client.HTTPSConnection(
                    self._host, self._port, timeout=self._timeout, context=ssl.create_default_context()
                )
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        return self._conn

    def send(self, body: bytes, batch_id: str) -> SendResult:
        """Post one batch body. Never raises: network failures come back as `Outcome.RETRY`.

        Args:
            body: the JSON request body (see `batch_body`).
            batch_id: sent as `Idempotency-Key`, the same on every retry of this batch.
        """
        if self._compress:
            import gzip

            result = self._send_once(gzip.compress(body, compresslevel=5), batch_id, gzip_=True)
            if result.status not in (400, 415):
                return result
            # A server that does not take gzip bodies: send plain from now on (this batch too).
            self._compress = False
            log.warning("errlearn: the server refused a gzip body (HTTP %s); sending uncompressed", result.status)
        return self._send_once(body, batch_id, gzip_=False)

    def _send_once(self, body: bytes, batch_id: str, *, gzip_: bool) -> SendResult:
        import http.client

        headers = dict(self._headers)
        headers["Idempotency-Key"] = batch_id
        if gzip_:
            headers["Content-Encoding"] = "gzip"
        reused = self._conn is not None
        try:
            status, payload, retry_after = self._post(body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self.close()
            if not reused:
                return SendResult(Outcome.RETRY, detail=f"{type(exc).__name__}: {exc}")
            # A kept-alive connection the server already closed fails at once: one fresh attempt is not a retry.
            try:
                status, payload, retry_after = self._post(body, headers)
            except (OSError, http.client.HTTPException) as exc2:
                self.close()
                return SendResult(Outcome.RETRY, detail=f"{type(exc2).__name__}: {exc2}")
        return _classify(status, payload, retry_after)

    def _post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float | None]:
        conn = self._connection()
        conn.request("POST", self._path, body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()  # read it all so the connection can be reused
        if response.will_close:
            self.close()
        return response.status, payload, _retry_after(response.getheader("Retry-After"))

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # Closing a broken socket must not hide the original failure.
            with contextlib.suppress(Exception):
                conn.close()


def _classify(status: int, payload: bytes, retry_after: float | None) -> SendResult:
    if 200 <= status < 300:
        accepted, rejected, detail = _counts(payload)
        return SendResult(Outcome.DELIVERED, status, accepted, rejected, detail=detail)
    detail = payload[:300].decode(errors="replace")
    if status == 413:
        return SendResult(Outcome.TOO_LARGE, status, detail=detail)
    if status in (401, 403):
        return SendResult(Outcome.UNAUTHORIZED, status, detail=detail)
    if status in (408, 429) or status >= 500:
        return SendResult(Outcome.RETRY, status, retry_after=retry_after, detail=f"HTTP {status}: {detail}")
    return SendResult(Outcome.INVALID, status, detail=detail)


def _counts(payload: bytes) -> tuple[int | None, int, str]:
    """(accepted, rejected, first rejection) from a 202 answer; tolerant of a body we do not understand."""
    try:
        answer = _json.loads(payload)
        accepted = int(answer.get("accepted", 0))
        rejected = int(answer.get("rejected", 0))
        first = next((r for r in answer.get("results", ()) if r.get("status") == "rejected"), None)
        return accepted, rejected, _json.dumps(first).decode()[:300] if first else ""
    except Exception:
        return None, 0, ""
