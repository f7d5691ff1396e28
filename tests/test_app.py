"""The application's start-up: a serving process keeps its start-up heap out of the garbage collector."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from agent.api.app import create_app
from agent.settings import Settings


@pytest.mark.parametrize("freeze", [True, False])
def test_a_serving_app_freezes_its_start_up_heap_and_a_test_app_does_not(settings: Settings, freeze: bool) -> None:
    gc.unfreeze()
    try:
        with TestClient(create_app(settings, freeze_heap=freeze)) as client:
            assert client.get("/health").status_code == 200
            assert (gc.get_freeze_count() > 0) is freeze
    finally:
        gc.unfreeze()
