"""Fixtures: a real config with two accounts, a real store on disk with the
core's tables and the suppression plugin's migration, and the plugin loaded
through its entry point on a real hook dispatcher."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.config import Config, load_config
from core.dispatch import HookDispatcher
from core.plugin_api import PluginContext
from core.plugins import create_manager
from core.store import Store
from core.store.accounts import ensure_account
from core.store.settings import DatabaseSettings
from tests.support import backend

MOX_CONF = """DataDir: data
User: 1000
LogLevel: info
Hostname: mail.example
Postmaster:
	Account: mox
	Mailbox: Postmaster
Listeners:
	local:
		IPs:
			- 127.0.0.1
"""

DOMAINS_CONF = """Domains:
	mail.example:
		LocalpartCatchallSeparator: +
Accounts:
	mox:
		Domain: mail.example
		Destinations:
			mox@mail.example: nil
		KeepRetiredMessagePeriod: 72h0m0s
	other:
		Domain: mail.example
		Destinations:
			other@mail.example: nil
		KeepRetiredMessagePeriod: 72h0m0s
"""


def write_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mox.conf").write_text(MOX_CONF)
    (directory / "domains.conf").write_text(DOMAINS_CONF)
    return directory / "mox.conf"


@pytest.fixture
def config(tmp_path: Path) -> Config:
    return load_config(write_config(tmp_path / "config"))


@pytest.fixture
def dispatcher() -> HookDispatcher:
    return HookDispatcher(create_manager(["suppression"]))


@pytest.fixture
async def store(config: Config, dispatcher: HookDispatcher) -> AsyncIterator[Store]:
    s = await Store.open(config.data_dir, dispatcher.setup("moxtrio_migrations"), database=backend.current())

    def accounts(conn: sqlite3.Connection) -> None:
        for name in config.dynamic.Accounts:
            ensure_account(conn, name)

    await s.write(accounts)
    try:
        yield s
    finally:
        await s.aclose()


@pytest.fixture
def ctx(config: Config, store: Store, dispatcher: HookDispatcher) -> PluginContext:
    c = PluginContext(config=config, store=store, hooks=dispatcher)
    dispatcher.setup("moxtrio_configure", ctx=c)
    return c


@pytest.fixture(autouse=True)
def _both_backends(default_db_backend: DatabaseSettings | None) -> DatabaseSettings | None:
    """Every test here runs on SQLite and on PostgreSQL (ids ``sqlite``/``postgres``)."""
    return default_db_backend
