"""Accounts: the config names them, the store keeps their data and passwords.

At start-up every account in domains.conf gets its rows (mailboxes).
"""

from __future__ import annotations

import logging

from core.plugin_api import PluginContext
from core.store import accounts as store_accounts
from core.store.sql import Connection

log = logging.getLogger("moxtrio.accounts")


async def sync_accounts(ctx: PluginContext) -> None:
    """Create store rows for every configured account (idempotent)."""
    names = sorted(ctx.config.dynamic.Accounts)

    def sync(conn: Connection) -> list[str]:
        created = []
        for name in names:
            if store_accounts.get_account(conn, name) is None:
                created.append(name)
            store_accounts.ensure_account(conn, name)
        return created

    for name in await ctx.store.write(sync):
        log.info("account created in store: %s", name)


async def set_password(ctx: PluginContext, account: str, password: str) -> None:
    """Set an account's password; the account must be in the config."""
    if account not in ctx.config.dynamic.Accounts:
        raise KeyError(f"unknown account {account!r}")

    def write(conn: Connection) -> None:
        store_accounts.ensure_account(conn, account)
        store_accounts.set_password(conn, account, password)

    await ctx.store.write(write)
