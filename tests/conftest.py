"""Shared fixtures. All state goes to tmp_path; no test reaches a real model by accident."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

try:  # unit tests must never call a real model by accident (pydantic-ai testing guide)
    from pydantic_ai import models as _pai_models

    _pai_models.ALLOW_MODEL_REQUESTS = False
except ImportError:  # pragma: no cover
    pass

INGEST_KEY = "test-ingest-key-0123456789"
ADMIN_KEY = "test-admin-key-0123456789"
REPO = Path(__file__).resolve().parents[1]
PG_ENV = "ERRLEARN_TEST_DATABASE_URL"


def evaldata_dir() -> Path | None:
    """`../shared/evaldata` beside the repo (or $ERRLEARN_EVALDATA); None when absent."""
    env = os.environ.get("ERRLEARN_EVALDATA")
    path = Path(env) if env else REPO.parent / "shared" / "evaldata"
    return path if path.is_dir() else None


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("ERRLEARN_") and name not in (PG_ENV, "ERRLEARN_EVALDATA"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("ERRLEARN_DATA_DIR", str(tmp_path / "data"))
    from agent.settings import get_settings

    get_settings.cache_clear()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    get_settings.cache_clear()
    # A CLI command run through CliRunner points the root handler at a stream CliRunner then closes;
    # the next test's output would carry logging's "--- Logging error ---" report. Restore the handlers.
    root.handlers[:] = handlers
    root.setLevel(level)


def _reset_postgres(url: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Every test that stores data runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'errlearn.db'}"
    url = os.environ.get(PG_ENV)
    if not url:
        pytest.skip(f"PostgreSQL tests need {PG_ENV}=postgresql+psycopg://user@host:5432/db (CI sets it)")
    try:
        _reset_postgres(url)
    except Exception as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"PostgreSQL at {PG_ENV} is not reachable: {exc}")
    return url


@pytest.fixture
def settings(tmp_path: Path, database_url: str):  # type: ignore[no-untyped-def]
    from agent.settings import Settings

    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        api_keys=[INGEST_KEY],  # type: ignore[list-item]
        admin_key=ADMIN_KEY,  # type: ignore[arg-type]
        worker=False,  # tests drive the worker explicitly (Worker.tick)
    )


@pytest.fixture
def client(settings):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from agent.api.app import create_app

    with TestClient(create_app(settings)) as c:
        c.headers["Authorization"] = f"Bearer {INGEST_KEY}"
        yield c


def admin_headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_KEY}"}
