"""Alembic environment: runs inside errlearn with the connection it is handed."""

from alembic import context

import agent.guide.tables
import agent.recovery.tables  # noqa: F401
from agent.store.tables import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # `alembic` CLI use: build an engine from the settings
    from agent.settings import get_settings
    from agent.store.db import make_engine

    engine = make_engine(get_settings().resolved_database_url)
    with engine.begin() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
        context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
