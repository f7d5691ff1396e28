"""Draft a new Alembic migration from the difference between tables.py and the migrated schema.

Usage: .venv/bin/python scripts/new_migration.py "message" 0003
Review the generated file: it is a draft, not a finished migration.
"""

import sys
import tempfile
from pathlib import Path

from alembic import command

from agent.store.db import alembic_config, make_engine, migrate

with tempfile.TemporaryDirectory() as tmp:
    engine = make_engine(f"sqlite:///{Path(tmp) / 'draft.db'}")
    migrate(engine)
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.revision(cfg, message=sys.argv[1], autogenerate=True, rev_id=sys.argv[2])
