"""`errlearn run` without ERRLEARN_URL / ERRLEARN_KEY: the local server and its generated key, or a clear message."""

from __future__ import annotations

import json
import os
import subprocess  # noqa: TID251 - runs the real CLI
import sys
from pathlib import Path

import httpx
import pytest

from agent.capture.target import local_url, resolve
from tests.support import ADMIN_KEY, LiveServer, free_port

LOCAL_KEY = "el_ingest_local-0123456789abcdef"


def _keys_file(data_dir: Path) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "keys.json"
    path.write_text(json.dumps({"api_keys": [LOCAL_KEY], "admin_key": ADMIN_KEY}))
    return path


def test_nothing_configured_and_no_local_server_says_what_is_missing(tmp_path: Path) -> None:
    target = resolve(None, None, default_url="http://127.0.0.1:8090", data_dir=tmp_path, probe=lambda url: False)
    assert target.url is None
    assert target.note is not None
    assert "no errlearn URL configured (ERRLEARN_URL is not set)" in target.note
    assert "http://127.0.0.1:8090" in target.note and "ERRLEARN_KEY" in target.note and "--url" in target.note


def test_a_local_server_and_its_key_file_are_the_default(tmp_path: Path) -> None:
    path = _keys_file(tmp_path)
    probed: list[str] = []
    target = resolve(
        None, None, default_url="http://127.0.0.1:8123", data_dir=tmp_path, probe=lambda url: probed.append(url) or True
    )
    assert probed == ["http://127.0.0.1:8123"]
    assert (target.url, target.key) == ("http://127.0.0.1:8123", LOCAL_KEY)
    assert target.note is not None and str(path) in target.note


def test_a_local_server_without_a_key_file_says_how_to_set_the_key(tmp_path: Path) -> None:
    target = resolve(None, None, default_url="http://127.0.0.1:8090", data_dir=tmp_path, probe=lambda url: True)
    assert target.url == "http://127.0.0.1:8090" and target.key is None
    assert target.note is not None and "ERRLEARN_KEY is not set" in target.note and "keys.json" in target.note


def test_given_url_and_key_win_and_nothing_is_probed(tmp_path: Path) -> None:
    _keys_file(tmp_path)

    def probe(url: str) -> bool:
        raise AssertionError("no probe when a URL is given")

    target = resolve("http://errlearn:9000", "k" * 20, default_url="x", data_dir=tmp_path, probe=probe)
    assert target == type(target)("http://errlearn:9000", "k" * 20, None)


def test_local_url_reaches_a_wildcard_bind_on_loopback() -> None:
    assert local_url("0.0.0.0", 8090) == "http://127.0.0.1:8090"
    assert local_url("10.1.2.3", 9000) == "http://10.1.2.3:9000"


def _run_cli(tmp_path: Path, env_extra: dict[str, str]) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ERRLEARN_")}
    env.update(ERRLEARN_SPOOL_DIR=str(tmp_path / "spool"), **env_extra)
    return subprocess.run(
        [sys.executable, "-m", "agent.cli", "run", "--service", "local-default", "--", sys.executable, "-c", "1/0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


@pytest.mark.slow
def test_run_reports_to_the_local_server_with_its_generated_key(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _keys_file(data)  # what `errlearn serve` writes when no keys are configured
    server = LiveServer(data, own_keys=True).start()
    try:
        out = _run_cli(tmp_path, {"ERRLEARN_DATA_DIR": str(data), "ERRLEARN_PORT": str(server.port)})
        assert out.returncode == 1 and "ZeroDivisionError" in out.stdout + out.stderr
        assert f"reporting to the local server at {server.url}" in out.stderr
        assert "not reachable" not in out.stderr and "spooled" not in out.stderr
        h = {"Authorization": f"Bearer {ADMIN_KEY}"}
        patterns = httpx.get(f"{server.url}/patterns", params={"service": "local-default"}, headers=h).json()["data"]
        assert [p["error_type"] for p in patterns] == ["ZeroDivisionError"]
    finally:
        server.stop()


@pytest.mark.slow
def test_run_without_url_or_local_server_says_what_is_missing(tmp_path: Path) -> None:
    out = _run_cli(tmp_path, {"ERRLEARN_DATA_DIR": str(tmp_path / "none"), "ERRLEARN_PORT": str(free_port())})
    assert out.returncode == 1
    assert "no errlearn URL configured (ERRLEARN_URL is not set)" in out.stderr
    assert "export ERRLEARN_URL=" in out.stderr
    assert "not reachable" not in out.stderr  # the old, misleading message
    assert list((tmp_path / "spool").glob("*")), "the event still waits in the spool"
