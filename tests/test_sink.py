"""The JSONL sink: one JSON line per event, per service file, rotated by size as RotatingFileHandler rotates."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from agent.store.sink import JsonlSink


def _event(i: int, service: str = "api", kind: str = "runtime") -> dict[str, Any]:
    return {"id": f"ev_{i:04d}", "service": service, "kind": kind, "error_message": "é" * 20, "n": i}


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text("utf-8").splitlines()]


def test_events_go_to_their_files_as_json_lines(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, max_bytes=1_000_000, backups=2)
    sink.append([_event(1), _event(2, "billing/eu"), _event(3, kind="build"), _event(4)])
    sink.close()
    assert [e["id"] for e in _lines(tmp_path / "api-errors.jsonl")] == ["ev_0001", "ev_0004"]
    assert [e["id"] for e in _lines(tmp_path / "billing_eu-errors.jsonl")] == ["ev_0002"]
    assert [e["id"] for e in _lines(tmp_path / "docker-build-errors.jsonl")] == ["ev_0003"]
    assert _lines(tmp_path / "api-errors.jsonl")[0]["error_message"] == "é" * 20


def test_files_rotate_by_size_keeping_backups_and_no_line_is_split_or_lost(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, max_bytes=400, backups=3)
    for i in range(15):  # ~115 bytes a line: three lines a file, five files' worth
        sink.append([_event(i)])
    sink.close()
    base = tmp_path / "api-errors.jsonl"
    files = [base, *(Path(f"{base}.{i}") for i in (1, 2, 3))]
    assert not Path(f"{base}.4").exists()  # three backups kept, the oldest dropped
    for f in files:
        assert 0 < f.stat().st_size < 400
    kept = [e["n"] for f in reversed(files) for e in _lines(f)]
    assert kept == list(range(3, 15))  # the oldest file's three lines dropped; none lost between, none split


def test_the_size_counts_other_writers_and_an_outside_truncation(tmp_path: Path) -> None:
    base = tmp_path / "api-errors.jsonl"
    sink = JsonlSink(tmp_path, max_bytes=400, backups=1)
    sink.append([_event(0)])
    with open(base, "ab") as other:  # another process appending to the same file
        other.write(b"x" * 300 + b"\n")
    sink.append([_event(1)])  # 110 + 301 + ~110 would pass 400: rotated first
    assert [e["n"] for e in _lines(base)] == [1]
    os.truncate(base, 0)  # sink rotation's copytruncate
    sink.append([_event(2)])
    sink.close()
    assert [e["n"] for e in _lines(base)] == [2]  # O_APPEND: written at the new end, no hole


def test_no_backups_starts_the_file_again(tmp_path: Path) -> None:
    sink = JsonlSink(tmp_path, max_bytes=250, backups=0)
    for i in range(5):
        sink.append([_event(i)])
    sink.close()
    base = tmp_path / "api-errors.jsonl"
    assert not Path(f"{base}.1").exists()
    assert [e["n"] for e in _lines(base)] == [4]
