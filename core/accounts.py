"""Accounts: the config names them, the store keeps their data and passwords.

At start-up every account in domains.conf gets its rows (mailboxes); in
localserve the ``mox`` account gets mox's well-known password when it has
none yet, as ``mox localserve`` does when it writes a new config.
"""

from __future__ import annotations

import logging
import sqlite3

from core.plugin_api import PluginContext
from core.store import accounts as store_accounts

log = logging.getLogger("moxtrio.accounts")

LOCALSERVE_ACCOUNT = "mox"
LOCALSERVE_PASSWORD = "moxmoxmox"


async def sync_accounts(ctx: PluginContext) -> None:
    """Create store rows for every configured account (idempotent)."""
    names = sorted(ctx.config.dynamic.Accounts)
    localserve = ctx.localserve

    def sync(conn: sqlite3.Connection) -> list[str]:
        created = []
        for name in names:
            if store_accounts.get_account(conn, name) is None:
                created.append(name)
            store_accounts.ensure_account(conn, name)
        # Kept in the core: seeded in the same transaction that creates the
        # account rows, before any listener or plugin task runs; no start-up
        # hook runs inside that transaction (a plugin task would race logins).
        if (
            localserve
            and LOCALSERVE_ACCOUNT in names
            and store_accounts.get_scram_credentials(conn, LOCALSERVE_ACCOUNT) is None
        ):
            store_accounts.set_password(conn, LOCALSERVE_ACCOUNT, LOCALSERVE_PASSWORD)
        return created

    for name in await ctx.store.write(sync):
        log.info("account created in store: %s", name)


async def set_password(ctx: PluginContext, account: str, password: str) -> None:
    """Set an account's password; the account must be in the config."""
    if account not in ctx.config.dynamic.Accounts:
        raise KeyError(f"unknown account {account!r}")

    def write(conn: sqlite3.Connection) -> None:
        store_accounts.ensure_account(conn, account)
        store_accounts.set_password(conn, account, password)

    await ctx.store.write(write)
