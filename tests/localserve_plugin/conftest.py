"""Fixtures: a real localserve config and store, the plugin loaded through its
entry point, and a context factory for localserve on/off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from core.config import Config, load_config
from core.dispatch import HookDispatcher
from core.plugin_api import PluginContext
from core.plugins import create_manager
from core.store import Store
from plugins.localserve.init import write_localserve_config


@pytest.fixture
def config(tmp_path: Path) -> Config:
    write_localserve_config(tmp_path / "conf", "127.0.0.1")
    return load_config(tmp_path / "conf" / "mox.conf")


@pytest.fixture
def dispatcher() -> HookDispatcher:
    return HookDispatcher(create_manager(["localserve"]), time_limit=20.0)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data")
    try:
        yield s
    finally:
        await s.aclose()


MakeCtx = Callable[..., PluginContext]


@pytest.fixture
def make_ctx(config: Config, store: Store, dispatcher: HookDispatcher) -> MakeCtx:
    def make(localserve: bool = True) -> PluginContext:
        ctx = PluginContext(config=config, store=store, hooks=dispatcher, localserve=localserve)
        dispatcher.setup("moxtrio_configure", ctx=ctx)
        return ctx

    return make
