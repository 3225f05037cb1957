"""Fixtures of the webhooks tests."""

from __future__ import annotations

import pytest

from core.store.settings import DatabaseSettings


@pytest.fixture(autouse=True)
def _both_backends(default_db_backend: DatabaseSettings | None) -> DatabaseSettings | None:
    """Every test here runs on SQLite and on PostgreSQL (ids ``sqlite``/``postgres``)."""
    return default_db_backend
