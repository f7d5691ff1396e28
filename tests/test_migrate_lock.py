"""Migrations under a lock: N processes starting at once on an empty database all come up."""

from __future__ import annotations

import subprocess  # noqa: TID251 - the test starts real processes
import sys
import time

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from agent.store.db import alembic_config

_MIGRATE = """
import sys, time
from agent.store.db import make_engine, migrate
start = float(sys.argv[2])
while time.time() < start:
    time.sleep(0.001)
migrate(make_engine(sys.argv[1]))
"""


@pytest.mark.slow
def test_four_processes_migrate_one_empty_database_at_once(database_url: str) -> None:
    start = time.time() + 3.0  # every process has imported errlearn by then; they begin together
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _MIGRATE, database_url, str(start)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    outcomes = [(p.wait(120), p.stderr.read().decode()[-2000:] if p.stderr else "") for p in procs]
    assert all(code == 0 for code, _ in outcomes), outcomes
    engine = create_engine(database_url)
    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()  # the newest, whatever its number
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    tables = set(inspect(engine).get_table_names())
    assert {"patterns", "pattern_aliases", "events"} <= tables and "miner_state" not in tables
    engine.dispose()
