"""The suppression plugin: per-account lists of recipients the queue won't deliver to (spec 05).

This module only wires hooks. Base addresses are in
:mod:`plugins.suppression.base`, the record and rows in
:mod:`plugins.suppression.records`, the automatic additions and the
delivery-time check in :mod:`plugins.suppression.decide`, the operations in
:mod:`plugins.suppression.service`, and the commands in
:mod:`plugins.suppression.commands`.

Unlike mox, which checks only the entry that starts a batched attempt, the
core calls the precheck for every recipient of a batch (spec README,
difference 8), so a listed recipient never rides along in someone else's
SMTP transaction.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from core.events import DeliveryOutcome
from core.hookspecs import hookimpl
from core.metrics import add_gauge
from core.plugin_api import CtlCommand, PluginContext
from core.store.migrations import Migration
from plugins.suppression.commands import ctl_commands
from plugins.suppression.decide import decide, precheck
from plugins.suppression.gauges import GAUGE
from plugins.suppression.records import MIGRATIONS
from plugins.suppression.service import SuppressionError, SuppressionService

__all__ = [
    "SuppressionError",
    "SuppressionService",
    "moxtrio_configure",
    "moxtrio_ctl_commands",
    "moxtrio_delivery_precheck",
    "moxtrio_migrations",
    "moxtrio_suppress_decision",
    "moxtrio_suppression_op",
]


@hookimpl
def moxtrio_migrations() -> list[Migration]:
    return list(MIGRATIONS)


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    """Offer the list operations to the commands and other plugins."""
    ctx.services["suppression"] = SuppressionService(ctx)
    add_gauge(GAUGE)


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return ctl_commands()


@hookimpl
def moxtrio_delivery_precheck(conn: sqlite3.Connection, entry: Any) -> DeliveryOutcome | None:
    """Fail a listed recipient permanently, without SMTP (event ``suppressed``)."""
    return precheck(conn, entry, entry.sender_account)


@hookimpl
def moxtrio_suppress_decision(
    conn: sqlite3.Connection, entry: Any, outcome: DeliveryOutcome
) -> bool | None:
    """Add the recipient after an immediate-block code or a third consecutive failure."""
    return decide(conn, entry, outcome)


@hookimpl
async def moxtrio_suppression_op(
    ctx: PluginContext, account: str, op: str, args: dict[str, Any]
) -> Any:
    """The webapi's SuppressionList/Add/Remove/Present for the authenticated account."""
    svc = ctx.services.get("suppression")
    if not isinstance(svc, SuppressionService):
        svc = SuppressionService(ctx)
    return await svc.op(account, op, args)
