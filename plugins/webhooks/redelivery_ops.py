"""Front ends of webhook redelivery: ``queue webhook redeliver`` and the webapi's
``WebhookRedeliver`` (through the core's ``WebhookRedeliverer``).

Both parse a selection into :class:`plugins.webhooks.redelivery.Selection`
and report, per original webhook, the new ID or why it was skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.goflags import BOOL, STR, UsageError, parse_flags
from core.queue.timefmt import TimeExprError, parse_go_duration, parse_rfc3339
from moxtrio import (
    CtlCommand,
    CtlRequest,
    CtlResult,
    PluginContext,
    Redelivered,
    RedeliverQuery,
    ServiceError,
)
from plugins.webhooks.redelivery import RedeliveryError, Selection, redeliver_now

USAGE = (
    "usage: moxtrio queue webhook redeliver [-ids id,...] [-account name]"
    " [-from time] [-to time] [-failed]\n"
    "  time: RFC 3339 (2026-12-01T00:00:00Z) or a duration from now (-24h)"
)


def parse_when(s: str, now: datetime) -> datetime:
    """RFC 3339, or a Go duration relative to now (``-24h``)."""
    s = s.strip()
    if s[:1] in "+-" or s[:1].isdigit() and "T" not in s:
        return now + parse_go_duration(s)
    return parse_rfc3339(s)


def _service(ctx: PluginContext) -> Any:
    from plugins.webhooks.service import WebhookService

    svc = ctx.service(WebhookService)
    if svc is None:
        raise RuntimeError("webhooks plugin not configured")
    return svc


async def cmd_redeliver(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    try:
        values, rest = parse_flags(
            list(req.args), {"ids": STR, "account": STR, "from": STR, "to": STR, "failed": BOOL}
        )
        if rest:
            raise UsageError(USAGE)
        svc = _service(ctx)
        now = svc.clock.now()
        sel = Selection(
            account=values.get("account", ""),
            only_failed=values.get("failed", "false").lower() in ("true", "1", "t"),
        )
        try:
            if values.get("ids"):
                sel.ids = [int(x) for x in values["ids"].split(",")]
            if values.get("from"):
                sel.submitted_from = parse_when(values["from"], now)
            if values.get("to"):
                sel.submitted_to = parse_when(values["to"], now)
        except (ValueError, TimeExprError) as exc:
            return CtlResult(f"{exc}\n", 1)
        done = await redeliver_now(svc, sel)
    except UsageError as exc:
        return CtlResult(f"{exc}\n", 2)
    except RedeliveryError as exc:
        return CtlResult(f"{exc}\n", 1)
    lines = []
    ok = 0
    for r in done:
        if r.new_id:
            ok += 1
            lines.append(f"{r.original_id} redelivered as {r.new_id}")
        else:
            lines.append(f"{r.original_id} not redelivered: {r.error}")
    lines.append(f"{ok} webhook(s) queued for redelivery")
    failed = ok == 0 and len(done) > 0
    return CtlResult("\n".join(lines) + "\n", 1 if failed else 0)


def ctl_commands() -> list[CtlCommand]:
    return [
        CtlCommand(
            ("queue", "webhook", "redeliver"),
            cmd_redeliver,
            "queue retired webhooks again as new webhooks (X-Mox-Webhook-Redelivery-Of)",
        )
    ]


class WebhookRedeliveryAPI:
    """The core's ``WebhookRedeliverer``: the webapi's WebhookRedeliver for one account.

    Never touches another account's webhooks; a bad selection (no IDs and
    no time range, an unparsable time) raises ``ServiceError("user", ...)``.
    """

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def redeliver(self, account: str, query: RedeliverQuery) -> list[Redelivered]:
        if not account:
            raise ServiceError("user", "redelivery without account")
        svc = _service(self.ctx)
        sel = Selection(ids=list(query.ids), account=account, only_failed=query.only_failed)
        try:
            if query.since:
                sel.submitted_from = parse_rfc3339(query.since)
            if query.until:
                sel.submitted_to = parse_rfc3339(query.until)
            if not sel.ids and sel.submitted_from is None and sel.submitted_to is None:
                raise RedeliveryError("select webhooks by IDs or by a From/To time range")
            done = await redeliver_now(svc, sel)
        except (TimeExprError, RedeliveryError) as exc:
            raise ServiceError("user", str(exc)) from exc
        return [Redelivered(r.original_id, r.new_id, r.error) for r in done]
