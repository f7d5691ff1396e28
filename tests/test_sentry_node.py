"""The official `@sentry/node` SDK (from npm) with Express, reporting to a live errlearn server.

`npm install @sentry/node express` runs once into a cache folder outside the repo (`ERRLEARN_NODE_CACHE`, default
`~/.cache/errlearn/node-sentry`); later runs reuse it. The app (tests/node/sentry_express_app.js) is the setup
docs/sentry.md gives: `Sentry.init` with a DSN whose path names the service, `setupExpressErrorHandler`, and
`captureException` with extra context (the seed's `captureCollaborationError`).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess  # noqa: TID251 - runs npm and node
import time
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN_KEY, LiveServer

APP = Path(__file__).resolve().parent / "node" / "sentry_express_app.js"
PACKAGES = ("@sentry/node@10", "express@5")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("node") is None or shutil.which("npm") is None,
        reason="needs Node.js and npm (apt-get install nodejs npm)",
    ),
]


def _node_modules() -> Path:
    cache = Path(os.environ.get("ERRLEARN_NODE_CACHE", Path.home() / ".cache" / "errlearn" / "node-sentry"))
    modules = cache / "node_modules"
    if not (modules / "@sentry" / "node" / "package.json").exists() or not (modules / "express").exists():
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", *PACKAGES], cwd=cache, check=True, timeout=600
        )
    return modules


def _patterns(url: str, service: str) -> list[dict]:  # type: ignore[type-arg]
    h = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.get(f"{url}/patterns", params={"service": service}, headers=h).json()["data"]  # type: ignore[no-any-return]


def _samples(url: str, pattern_id: str) -> list[dict]:  # type: ignore[type-arg]
    h = {"Authorization": f"Bearer {ADMIN_KEY}"}
    return httpx.get(f"{url}/patterns/{pattern_id}", headers=h).json()["samples"]  # type: ignore[no-any-return]


def test_sentry_node_express_events_arrive_grouped_with_their_context(tmp_path: Path) -> None:
    modules = _node_modules()
    key = "el_" + secrets.token_hex(24)  # the JavaScript SDKs refuse a DSN key with '-'
    data = tmp_path / "data"
    data.mkdir()
    server = LiveServer(data, env={"ERRLEARN_API_KEYS": key}).start()
    try:
        dsn = f"http://{key}@127.0.0.1:{server.port}/collab-engine/1"
        out = subprocess.run(
            ["node", str(APP), dsn],
            env={**os.environ, "NODE_PATH": str(modules)},
            capture_output=True,
            text=True,
            timeout=120,
            cwd=tmp_path,
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["statuses"] == [500, 500, 500] and report["flushed"] is True and report["collabId"]

        deadline = time.monotonic() + 20
        patterns: list[dict] = []  # type: ignore[type-arg]
        while time.monotonic() < deadline:
            patterns = _patterns(server.url, "collab-engine")
            if sum(p["count"] for p in patterns) >= 4:
                break
            time.sleep(0.2)
        by_type = {p["error_type"]: p for p in patterns}
        assert set(by_type) == {"TypeError", "SyntaxError"}, patterns

        # the three thrown TypeErrors (three documents) are one pattern
        type_error = by_type["TypeError"]
        assert type_error["count"] == 3 and type_error["service"] == "collab-engine"
        sample = _samples(server.url, type_error["id"])[0]
        assert sample["service"] == "collab-engine"
        assert sample["context"].startswith("POST /documents/")
        stack = sample["stack_trace"] or ""
        assert "at applyOperation (" in stack and "sentry_express_app.js:" in stack
        meta = sample["additional_data"]
        assert meta["release"] == "collab-engine@2.3.4" and meta["environment"] == "staging"
        assert meta["platform"] == "node" and meta["sdk"]["name"] == "sentry.javascript.node"
        assert meta["mechanism"].startswith("auto.middleware.express") and meta["handled"] is False

        # captureException with extra context: the extra arrives, scrubbed
        (collab,) = _samples(server.url, by_type["SyntaxError"]["id"])
        extra = collab["additional_data"]["extra"]
        assert {k: extra[k] for k in ("documentId", "userId", "operation")} == {
            "documentId": "doc-77",
            "userId": "user-9",
            "operation": "merge",
        }
        assert "sk_live_0123456789abcdefghij" not in json.dumps(collab)
        assert collab["additional_data"]["tags"]["component"] == "collaboration"
        assert collab["additional_data"]["handled"] is True
        assert "JSON.parse" in (collab["stack_trace"] or "") or "at main (" in (collab["stack_trace"] or "")
    finally:
        server.stop()
