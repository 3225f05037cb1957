"""Fixtures: a real config, a real store with the holdrules plugin's migration,
the plugin loaded through its entry point, and the core queue service."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import Config, load_config
from core.dispatch import HookDispatcher
from core.plugin_api import PluginContext
from core.plugins import create_manager
from core.queue.service import QueueService
from core.store import Store
from core.store.settings import DatabaseSettings
from plugins.localserve.init import write_localserve_config
from tests.support import backend


@pytest.fixture
def config(tmp_path: Path) -> Config:
    write_localserve_config(tmp_path / "conf", "127.0.0.1")
    return load_config(tmp_path / "conf" / "mox.conf")


@pytest.fixture
def dispatcher() -> HookDispatcher:
    return HookDispatcher(create_manager(["holdrules"]))


@pytest.fixture
async def store(tmp_path: Path, dispatcher: HookDispatcher) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data", dispatcher.setup("moxtrio_migrations"), database=backend.current())
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
def ctx(config: Config, store: Store, dispatcher: HookDispatcher) -> PluginContext:
    c = PluginContext(config=config, store=store, hooks=dispatcher, localserve=True)
    # The real queue service (not running: hold_matching needs only the store).
    c.queue = QueueService(c)
    dispatcher.setup("moxtrio_configure", ctx=c)
    return c


@pytest.fixture(autouse=True)
def _both_backends(default_db_backend: DatabaseSettings | None) -> DatabaseSettings | None:
    """Every test here runs on SQLite and on PostgreSQL (ids ``sqlite``/``postgres``)."""
    return default_db_backend
