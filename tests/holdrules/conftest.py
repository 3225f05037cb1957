"""Fixtures: a real config, a real store with the holdrules plugin's migration,
the plugin loaded through its entry point, and a small fake queue service."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from core.config import Config, load_config
from core.dispatch import HookDispatcher
from core.localserve_init import write_localserve_config
from core.plugin_api import PluginContext
from core.plugins import create_manager
from core.store import Store


class FakeQueue:
    """Stands in for the core queue service (``ctx.services["queue"]``) until it
    exists: records the filters it is given and applies them to the real rows
    with the spec 03 §9.1 semantics of the fields the plugin uses (empty
    filter = all, ``IDs``, ``Account``)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.filters: list[Any] = []

    async def hold(self, filt: Any) -> int:
        self.filters.append(filt)
        ids = list(getattr(filt, "IDs", None) or [])
        account = getattr(filt, "Account", "") or ""

        def write(conn: sqlite3.Connection) -> int:
            q = "UPDATE queue SET hold = 1 WHERE 1"
            args: list[Any] = []
            if ids:
                q += f" AND id IN ({', '.join('?' for _ in ids)})"
                args.extend(ids)
            if account:
                q += " AND sender_account = ?"
                args.append(account)
            return conn.execute(q, args).rowcount

        return await self.store.write(write)


@pytest.fixture
def config(tmp_path: Path) -> Config:
    write_localserve_config(tmp_path / "conf", "127.0.0.1")
    return load_config(tmp_path / "conf" / "mox.conf")


@pytest.fixture
def dispatcher() -> HookDispatcher:
    return HookDispatcher(create_manager(["holdrules"]))


@pytest.fixture
async def store(tmp_path: Path, dispatcher: HookDispatcher) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data", dispatcher.setup("moxtrio_migrations"))
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
def fake_queue(store: Store) -> FakeQueue:
    return FakeQueue(store)


@pytest.fixture
def ctx(
    config: Config, store: Store, dispatcher: HookDispatcher, fake_queue: FakeQueue
) -> PluginContext:
    c = PluginContext(config=config, store=store, hooks=dispatcher, localserve=True)
    c.services["queue"] = fake_queue
    dispatcher.setup("moxtrio_configure", ctx=c)
    return c
