"""Nothing acknowledged is ever lost: SIGKILL the server mid-stream, restart, every 202 is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import crash_once


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    total = 0
    for round_ in range(5):
        acked, missing = crash_once(data, run_s=0.5)
        print(f"crash round {round_ + 1}: {acked} acknowledged, {missing} missing")
        assert acked > 0, "the server acknowledged nothing before it was killed"
        assert missing == 0
        total += acked
    assert total > 100
