"""The webhooks plugin: outgoing delivery events and incoming messages as HTTP POSTs.

mox's webhooks, wire-compatible. Webhooks are rows in this plugin's own tables, written inside the
core's transaction that records the event (so an event is never lost or
sent twice) and delivered afterwards by :class:`WebhookService`'s trio tasks
with retries, superseding and retired history. This module only wires
hooks; see ``README.md`` for the signing extension.

In-transaction hooks get the server's ``ctx`` beside the ``conn``; the
service that owns the configuration and the clock is the one registered
in that context, so several servers in one process (tests) keep theirs apart.
"""

from __future__ import annotations

from typing import Any

from core.store.sql import Connection
from moxtrio import (
    CtlCommand,
    IncomingDelivered,
    Migration,
    OutgoingEvent,
    PluginContext,
    WebhookAdmin,
    WebhookRedeliverer,
    hookimpl,
)
from plugins.webhooks import redelivery, redelivery_ops
from plugins.webhooks.commands import ctl_commands
from plugins.webhooks.gauges import GAUGE
from plugins.webhooks.schema import MIGRATIONS
from plugins.webhooks.service import WebhookService, WebhookSettings

__all__ = [
    "WebhookService",
    "WebhookSettings",
    "moxtrio_background_tasks",
    "moxtrio_configure",
    "moxtrio_ctl_commands",
    "moxtrio_incoming_delivered",
    "moxtrio_migrations",
    "moxtrio_outgoing_event",
]

@hookimpl
def moxtrio_migrations() -> list[Migration]:
    return list(MIGRATIONS) + list(redelivery.MIGRATIONS)


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    svc = WebhookService(ctx)
    ctx.provide(WebhookService, svc)
    ctx.provide(WebhookAdmin, svc)  # type: ignore[type-abstract]
    ctx.provide(WebhookRedeliverer, redelivery_ops.WebhookRedeliveryAPI(ctx))  # type: ignore[type-abstract]
    ctx.metrics.add_gauge(GAUGE)


@hookimpl
def moxtrio_background_tasks(ctx: PluginContext) -> list[Any]:
    svc = ctx.service(WebhookService)
    return [svc.run] if svc is not None else []


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return ctl_commands() + redelivery_ops.ctl_commands()


@hookimpl
def moxtrio_outgoing_event(conn: Connection, ctx: PluginContext, event: OutgoingEvent) -> None:
    svc = ctx.service(WebhookService)
    if svc is not None:
        svc.on_outgoing_event(conn, event)


@hookimpl
def moxtrio_incoming_delivered(
    conn: Connection, ctx: PluginContext, delivered: IncomingDelivered
) -> None:
    svc = ctx.service(WebhookService)
    if svc is not None:
        svc.on_incoming(conn, delivered)
