"""errlearn-sdk as its own distribution: build the wheel, install it ALONE into a clean venv, send to a live server.

The clean venv has no pip, no orjson, nothing but the standard library and the one wheel (installed with the
outer venv's pip via `--python`), so this fails if the SDK reaches for anything the server venv happens to have.
"""

from __future__ import annotations

import json
import subprocess  # noqa: TID251 - builds a wheel and runs a clean interpreter
import sys
import time
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.support import ADMIN_KEY, INGEST_KEY, LiveServer  # the repository's live-server helper

SDK = Path(__file__).resolve().parent.parent

SEND = """
import json, sys
import errlearn_sdk as sdk

url, key = sys.argv[1], sys.argv[2]
sdk.init(url, key=key, service="dist-check", environment="ci", release="9.9.9")
def charge(order_id):
    raise ValueError(f"card declined for order {order_id} token=sk_live_0123456789abcdef")
try:
    charge(42)
except ValueError:
    sdk.capture_exception(order_id=42)
flushed = sdk.flush(20)
stats = sdk.stats()
sdk.close()
third_party = sorted(
    m for m in sys.modules
    if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] not in ("errlearn_sdk", "__main__")
)
print(json.dumps({"flushed": flushed, "stats": stats, "third_party": third_party, "file": sdk.__file__}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(SDK)],
        check=True,
        timeout=300,
    )
    (found,) = out.glob("errlearn_sdk-*.whl")
    return found


def test_the_wheel_is_small_and_holds_only_the_sdk(wheel: Path) -> None:
    assert wheel.stat().st_size < 200_000, f"{wheel.name}: {wheel.stat().st_size} bytes"
    names = zipfile.ZipFile(wheel).namelist()
    assert (
        "errlearn_sdk/__init__.py" in names
        and "errlearn_sdk/scrub/__init__.py" in names
        and "errlearn_sdk/scrub/rules.py" in names
    )
    dist_info = "-".join(wheel.name.split("-")[:2]) + ".dist-info"
    assert {n.split("/")[0] for n in names} == {"errlearn_sdk", dist_info}
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("/METADATA"))).decode()
    assert "Requires-Dist: orjson" in metadata and "extra == 'fast'" in metadata  # optional only
    assert [line for line in metadata.splitlines() if line.startswith("Requires-Dist") and "extra ==" not in line] == []


def test_installed_alone_it_sends_an_event_to_a_live_server(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "clean-venv"
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", str(wheel)],
        check=True,
        timeout=120,
    )
    site = next((env_dir / "lib").glob("python3*/site-packages"))
    installed = sorted(p.name for p in site.iterdir() if not p.name.startswith(("_", ".")) and p.name != "__pycache__")
    assert [n for n in installed if not n.endswith(".dist-info")] == ["errlearn_sdk"]
    assert [n for n in installed if n.endswith(".dist-info")] == [n for n in installed if n.startswith("errlearn_sdk-")]

    data = tmp_path / "data"
    data.mkdir()
    server = LiveServer(data).start()
    try:
        out = subprocess.run(
            [str(python), "-I", "-c", SEND, server.url, INGEST_KEY],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=tmp_path,  # not the repo: nothing importable by accident
        )
        assert out.returncode == 0, out.stderr
        report = json.loads(out.stdout.strip().splitlines()[-1])
        assert report["file"].startswith(str(env_dir))
        assert report["third_party"] == []  # orjson is absent here: the stdlib JSON path sent it
        assert report["flushed"] is True
        assert report["stats"]["sent"] == 1, report["stats"]

        headers = {"Authorization": f"Bearer {ADMIN_KEY}"}
        deadline = time.monotonic() + 20
        patterns: list[dict[str, object]] = []
        while time.monotonic() < deadline and not patterns:
            patterns = httpx.get(f"{server.url}/patterns", params={"service": "dist-check"}, headers=headers).json()[
                "data"
            ]
            time.sleep(0.2)
        assert len(patterns) == 1 and patterns[0]["error_type"] == "ValueError"
        detail = httpx.get(f"{server.url}/patterns/{patterns[0]['id']}", headers=headers).json()
        (event,) = detail["samples"]
        assert "card declined for order" in event["error_message"]
        assert "sk_live_0123456789abcdef" not in json.dumps(event)  # scrubbed on the client, by the same code
        assert "in charge" in (event["stack_trace"] or "")
        assert event["additional_data"]["order_id"] == 42
        assert event["additional_data"]["release"] == "9.9.9"
        assert event["additional_data"]["environment"] == "ci"
    finally:
        server.stop()
