"""Fixtures for the store tests: a real database, SQLite in tmp_path or PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.store import Store
from core.store.settings import DatabaseSettings


@pytest.fixture
async def store(tmp_path: Path, db_backend: DatabaseSettings | None) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data", database=db_backend)
    try:
        yield s
    finally:
        await s.aclose()
