"""The suppression plugin: per-account lists of recipients the queue won't deliver to.

This module only wires hooks. Base addresses are in
:mod:`plugins.suppression.base`, the record and rows in
:mod:`plugins.suppression.records`, the automatic additions and the
delivery-time check in :mod:`plugins.suppression.decide`, the operations in
:mod:`plugins.suppression.service`, and the commands in
:mod:`plugins.suppression.commands`.

Unlike mox, which checks only the entry that starts a batched attempt, the
core calls the precheck for every recipient of a batch (docs/differences.md,
item 8), so a listed recipient never rides along in someone else's
SMTP transaction.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from core.store.sql import Connection
from moxtrio import (
    CtlCommand,
    DeliveryOutcome,
    IncomingDelivered,
    Migration,
    PluginContext,
    SuppressionProvider,
    hookimpl,
)
from plugins.suppression import bulk_commands, complaints, expiry
from plugins.suppression.commands import ctl_commands
from plugins.suppression.decide import decide, precheck
from plugins.suppression.gauges import GAUGE
from plugins.suppression.provider import SuppressionAPI
from plugins.suppression.records import MIGRATIONS
from plugins.suppression.service import SuppressionError, SuppressionService

log = logging.getLogger("moxtrio.suppression")
CLEANUP_INTERVAL = 3600.0

__all__ = [
    "moxtrio_background_tasks",
    "SuppressionError",
    "SuppressionService",
    "moxtrio_configure",
    "moxtrio_ctl_commands",
    "moxtrio_delivery_precheck",
    "moxtrio_incoming_inspect",
    "moxtrio_incoming_report",
    "moxtrio_migrations",
    "moxtrio_suppress_decision",
]


@hookimpl
def moxtrio_migrations() -> list[Migration]:
    return list(MIGRATIONS)


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    """Offer the list operations to the commands and, as the core's
    ``SuppressionProvider``, to other plugins (the webapi)."""
    svc = SuppressionService(ctx)
    ctx.provide(SuppressionService, svc)
    ctx.provide(SuppressionProvider, SuppressionAPI(svc))  # type: ignore[type-abstract]
    expiry.configure(ctx)
    ctx.metrics.add_gauge(GAUGE)


@hookimpl
def moxtrio_background_tasks(ctx: PluginContext) -> list[Any]:
    """Hourly removal of lapsed entries (they already stopped suppressing)."""
    svc = ctx.service(SuppressionService)
    return [_cleanup_task(svc)] if svc is not None else []


def _cleanup_task(svc: SuppressionService) -> Any:
    async def cleanup(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        while True:
            await trio.sleep(CLEANUP_INTERVAL)
            try:
                await svc.delete_lapsed()
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("removing lapsed suppressions")

    return cleanup


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return ctl_commands() + bulk_commands.ctl_commands()


@hookimpl
def moxtrio_delivery_precheck(conn: Connection, entry: Any) -> DeliveryOutcome | None:
    """Fail a listed recipient permanently, without SMTP (event ``suppressed``)."""
    return precheck(conn, entry, entry.sender_account)


@hookimpl
def moxtrio_suppress_decision(
    conn: Connection, ctx: PluginContext, entry: Any, outcome: DeliveryOutcome
) -> bool | None:
    """Add the recipient after an immediate-block code or a third consecutive failure."""
    return decide(conn, entry, outcome, ctx)


@hookimpl
async def moxtrio_incoming_inspect(
    ctx: PluginContext, message_path: str, msg_prefix: bytes, message_data: bytes | None
) -> Any:
    """Recognise a spam complaint (RFC 5965 feedback report) before it is stored."""
    return await complaints.inspect(message_path, msg_prefix, message_data)


@hookimpl
def moxtrio_incoming_report(
    conn: Connection, ctx: PluginContext, delivered: IncomingDelivered, reports: list[Any]
) -> bool | None:
    """Match a complaint to the outgoing message: suppress, raise event ``complaint``."""
    return complaints.on_report(conn, ctx, delivered, reports)
