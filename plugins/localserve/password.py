"""The ``mox`` account gets mox's well-known password when it has none yet.

As ``mox localserve`` does for a new config. Runs as a start-up task: the
server starts background tasks after the accounts' rows exist and before
any listener accepts a login.
"""

from __future__ import annotations

from typing import Any

import trio

from core.store import accounts as store_accounts
from core.store.sql import Connection
from moxtrio import PluginContext
from plugins.localserve.init import LOCALSERVE_PASSWORD

ACCOUNT = "mox"


def make_task(ctx: PluginContext) -> Any:
    """A task that sets the password once, then ends."""

    configured = ACCOUNT in ctx.config.dynamic.Accounts

    def seed(conn: Connection) -> None:
        if not configured:
            return
        if store_accounts.get_scram_credentials(conn, ACCOUNT) is None:
            store_accounts.set_password(conn, ACCOUNT, LOCALSERVE_PASSWORD)

    async def seed_password(task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await ctx.store.write(seed)
        task_status.started()

    return seed_password
