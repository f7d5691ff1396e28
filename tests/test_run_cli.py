"""`errlearn run` end to end: real failing commands, a live errlearn server, and the server down."""

from __future__ import annotations

import os
import subprocess  # noqa: TID251 - runs the real CLI
import sys
from pathlib import Path

import httpx
import pytest

from tests.support import INGEST_KEY, LiveServer, free_port

FAILING = "import json\nprint('building step 1')\njson.loads('{broken')\n"


def _run(args: list[str], spool: Path, url: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRLEARN_")}
    env.update(ERRLEARN_URL=url, ERRLEARN_KEY=INGEST_KEY, ERRLEARN_SPOOL_DIR=str(spool))
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", *args], env=env, capture_output=True, timeout=120, cwd=cwd
    )


def _events(url: str, service: str) -> list[dict]:  # type: ignore[type-arg]
    h = {"Authorization": f"Bearer {INGEST_KEY}"}
    pats = httpx.get(f"{url}/patterns", params={"service": service}, headers=h).json()["data"]
    return [s for p in pats for s in httpx.get(f"{url}/patterns/{p['id']}", headers=h).json()["samples"]]


@pytest.mark.slow
def test_failing_commands_are_reported_and_spooled_when_the_server_is_down(tmp_path: Path) -> None:
    script = tmp_path / "build.py"
    script.write_text(FAILING)
    (tmp_path / "Makefile").write_text("build:\n\t@echo compiling\n\t@exit 3\n")
    spool = tmp_path / "spool"
    data = tmp_path / "data"
    data.mkdir()

    # 1. server down: the build's result is untouched, the event waits in the spool
    down = _run(
        ["--service", "shop-build", "--kind", "build", "--", sys.executable, str(script)],
        spool,
        f"http://127.0.0.1:{free_port()}",
        tmp_path,
    )
    assert down.returncode == 1
    assert b"building step 1" in down.stdout and b"JSONDecodeError" in down.stdout + down.stderr
    assert list(spool.glob("*")), "the event was spooled"

    server = LiveServer(data).start()
    try:
        # 2. server up: a failing make target is reported, exit code preserved, output passed through
        make = _run(
            ["--service", "shop-make", "--kind", "ci", "--", "make", "-s", "build"], spool, server.url, tmp_path
        )
        assert make.returncode == 2 and b"compiling" in make.stdout
        ev = _events(server.url, "shop-make")
        assert len(ev) == 1 and ev[0]["kind"] == "ci" and ev[0]["additional_data"]["exit_code"] == 2
        assert "Error 3" in (ev[0]["stack_trace"] or "") + ev[0]["error_message"]

        # 3. the spooled event from step 1 arrived with this run (spool drained after a delivery)
        spooled = _events(server.url, "shop-build")
        assert len(spooled) == 1 and spooled[0]["error_type"].endswith("JSONDecodeError")
        assert "json.loads" in (spooled[0]["stack_trace"] or "")
        assert not [p for p in spool.glob("*") if p.is_file()], "the spool is empty again"

        # 4. a successful command sends nothing
        ok = _run(["--service", "shop-ok", "--", sys.executable, "-c", "print('fine')"], spool, server.url, tmp_path)
        assert ok.returncode == 0 and ok.stdout.strip() == b"fine"
        assert _events(server.url, "shop-ok") == []
        # build and CI events land in the seed's own JSONL sinks
        sinks = data / "logs" / "errors"
        assert (sinks / "docker-build-errors.jsonl").exists() and (sinks / "ci-cd-errors.jsonl").exists()
    finally:
        server.stop()
