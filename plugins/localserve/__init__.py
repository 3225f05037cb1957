"""The localserve plugin: delivery to ourselves and simulated failures, as mox's localserve.

Active only when the server runs as ``moxtrio localserve`` (``ctx.localserve``);
otherwise every hook returns None and the core behaves as a normal server.
This module only wires hooks: the verdicts live in
:mod:`plugins.localserve.simulate`, delivery in :mod:`plugins.localserve.deliver`,
target and time limits in :mod:`plugins.localserve.settings`.
"""

from __future__ import annotations

from typing import Any

from moxtrio import (
    CliCommand,
    CtlCommand,
    DeliveryBatch,
    DeliveryResult,
    OwnDomainAnswers,
    PluginContext,
    Rejection,
    hookimpl,
)
from plugins.localserve import cli, fastretry, password, settings
from plugins.localserve.authanswers import LocalAuthAnswers
from plugins.localserve.catchall import fallback_recipient
from plugins.localserve.deliver import deliver_batch, uses_fail_transport
from plugins.localserve.followups import DEFAULT_DELAY, FollowUps
from plugins.localserve.hang import with_hang
from plugins.localserve.simulate import verdict

__all__ = [
    "moxtrio_background_tasks",
    "moxtrio_cli_commands",
    "moxtrio_configure",
    "moxtrio_ctl_commands",
    "moxtrio_deliver",
    "moxtrio_smtp_data_recipient",
    "moxtrio_smtp_fallback_recipient",
    "moxtrio_smtp_mail_from",
    "moxtrio_smtp_rcpt_to",
]


@hookimpl
def moxtrio_cli_commands() -> list[CliCommand]:
    """``moxtrio localserve``: write a config on a new directory and serve it."""
    return [cli.COMMAND]


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    """Validate ``plugins/localserve.yaml`` at start (only matters in localserve)."""
    if ctx.localserve:
        parsed = settings.configure(ctx)
        delay = DEFAULT_DELAY if parsed.followup_delay is None else parsed.followup_delay
        ctx.provide(FollowUps, FollowUps(ctx, delay))
        ctx.provide(OwnDomainAnswers, LocalAuthAnswers(ctx))  # type: ignore[type-abstract]
        if ctx.has_queue:
            # Every message goes to our own listener (moxtrio_deliver below).
            ctx.queue.loopback.active = True


@hookimpl
def moxtrio_background_tasks(ctx: PluginContext) -> list[Any]:
    """The follow-up sender; the fast-retry loop with ``localserve -fast-retries``."""
    if not ctx.localserve:
        return []
    tasks: list[Any] = [password.make_task(ctx)]
    followups = ctx.service(FollowUps)
    if followups is not None:
        tasks.append(followups.run)
    parsed = ctx.service(settings.LocalserveSettings)
    if parsed is not None and parsed.fast_retries:
        tasks.append(fastretry.make_task(ctx))
    return tasks


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return fastretry.ctl_commands()


@hookimpl
def moxtrio_smtp_mail_from(
    ctx: PluginContext, listener_kind: str, address: str
) -> Rejection | None:
    if not ctx.localserve:
        return None
    return with_hang(ctx, verdict("mailfrom", listener_kind, address))


@hookimpl
def moxtrio_smtp_rcpt_to(ctx: PluginContext, listener_kind: str, address: str) -> Rejection | None:
    if not ctx.localserve:
        return None
    return with_hang(ctx, verdict("rcptto", listener_kind, address))


@hookimpl
def moxtrio_smtp_fallback_recipient(
    ctx: PluginContext, listener_kind: str, address: str
) -> str | None:
    if not ctx.localserve:
        return None
    return fallback_recipient(ctx)


@hookimpl
def moxtrio_smtp_data_recipient(
    ctx: PluginContext, listener_kind: str, address: str
) -> Rejection | None:
    if not ctx.localserve:
        return None
    return with_hang(ctx, verdict("data", listener_kind, address))


@hookimpl
async def moxtrio_deliver(ctx: PluginContext, batch: DeliveryBatch) -> DeliveryResult | None:
    if not ctx.localserve or uses_fail_transport(ctx, batch):
        return None
    return await deliver_batch(ctx, batch)
