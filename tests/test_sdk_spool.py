"""The SDK's on-disk spool: atomic files, oldest first, bounded, shared safely between processes."""

from __future__ import annotations

import os
from pathlib import Path

import orjson
from errlearn_sdk.spool import Spool


def _lines(tag: str, n: int, size: int = 10) -> list[bytes]:
    return [orjson.dumps({"m": f"{tag}-{i}", "pad": "x" * size}) for i in range(n)]


def test_batches_come_back_oldest_first_and_leave_when_done(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "s", max_bytes=1_000_000)
    assert spool.claim_oldest() is None  # no folder yet: simply empty
    for tag in ("a", "b", "c"):
        assert spool.put(_lines(tag, 3)) == (3, 0)
    assert not [p for p in (tmp_path / "s").iterdir() if p.name.endswith(".tmp")]

    first = spool.claim_oldest()
    assert first is not None
    assert [orjson.loads(x)["m"] for x in first.lines] == ["a-0", "a-1", "a-2"]
    second = spool.claim_oldest()  # a claimed batch is not handed out twice
    assert second is not None and orjson.loads(second.lines[0])["m"] == "b-0"

    spool.release(second)  # failed: back in place, still before "c"
    spool.done(first)
    again = spool.claim_oldest()
    assert again is not None and orjson.loads(again.lines[0])["m"] == "b-0"
    spool.done(again)
    assert spool.pending()[0] == 1


def test_a_full_spool_drops_the_oldest_batches_and_counts_their_events(tmp_path: Path) -> None:
    batch = _lines("a", 4, size=200)
    size = len(b"\n".join(batch)) + 1
    spool = Spool(tmp_path, max_bytes=size * 3)
    for tag in ("a", "b", "c"):
        assert spool.put(_lines(tag, 4, size=200)) == (4, 0)
    assert spool.put(_lines("d", 4, size=200)) == (4, 4)  # "a" made room
    assert spool.put(_lines("e", 4, size=200)) == (4, 4)  # then "b"
    files, total = spool.pending()
    assert (files, total) == (3, size * 3)
    entry = spool.claim_oldest()
    assert entry is not None and orjson.loads(entry.lines[0])["m"] == "c-0"

    assert spool.put(_lines("huge", 50, size=200)) == (0, 50)  # bigger than the whole spool: itself dropped


def test_claims_of_dead_processes_are_released_and_live_ones_kept(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=1_000_000)
    spool.put(_lines("a", 2))
    spool.put(_lines("b", 2))
    (name_a, _), (name_b, _) = spool._ready_files()
    dead_pid = 2**22 + 12345  # above Linux's pid_max: never a live process
    os.rename(tmp_path / name_a, tmp_path / f"{name_a}.{dead_pid}.inflight")
    os.rename(tmp_path / name_b, tmp_path / f"{name_b}.{os.getppid()}.inflight")
    stale_tmp = tmp_path / ".x.jsonl.tmp"
    stale_tmp.write_bytes(b"partial")
    os.utime(stale_tmp, (0, 0))

    assert Spool(tmp_path, max_bytes=1_000_000).recover() == 1
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted([name_a, f"{name_b}.{os.getppid()}.inflight"])


def test_a_second_spool_on_the_same_folder_sees_the_first_ones_batches(tmp_path: Path) -> None:
    writer = Spool(tmp_path, max_bytes=1_000_000)
    writer.put(_lines("from-another-process", 2))
    reader = Spool(tmp_path, max_bytes=1_000_000)
    entry = reader.claim_oldest()
    assert entry is not None and len(entry.lines) == 2
    assert writer.claim_oldest() is None
