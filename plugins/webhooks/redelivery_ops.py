"""Front ends of webhook redelivery: ``queue webhook redeliver`` and the webapi's
``WebhookRedeliver`` (through the ``moxtrio_webhook_redeliver`` hook).

Both parse a selection into :class:`plugins.webhooks.redelivery.Selection`
and report, per original webhook, the new ID or why it was skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.goflags import BOOL, STR, UsageError, parse_flags
from core.plugin_api import CtlCommand, CtlRequest, CtlResult, PluginContext
from core.queue.timefmt import TimeExprError, parse_go_duration, parse_rfc3339
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


async def api_redeliver(ctx: PluginContext, account: str, args: dict[str, Any]) -> dict[str, Any]:
    """The webapi's WebhookRedeliver for ``account`` (never another account's webhooks).

    ``args``: ``IDs`` (list of ints), ``From``/``To`` (RFC 3339), ``OnlyFailed``.
    Raises ValueError with a message for the client.
    """
    if not account:
        raise ValueError("redelivery without account")
    svc = _service(ctx)
    ids = args.get("IDs") or []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise ValueError("IDs must be a list of integers")
    only_failed = args.get("OnlyFailed", False)
    if not isinstance(only_failed, bool):
        raise ValueError("OnlyFailed must be a boolean")
    sel = Selection(ids=list(ids), account=account, only_failed=only_failed)
    try:
        for name in ("From", "To"):
            v = args.get(name) or ""
            if not isinstance(v, str):
                raise ValueError(f"{name} must be a string")
            if v:
                t = parse_rfc3339(v)
                if name == "From":
                    sel.submitted_from = t
                else:
                    sel.submitted_to = t
        if not sel.ids and sel.submitted_from is None and sel.submitted_to is None:
            raise RedeliveryError("select webhooks by IDs or by a From/To time range")
        done = await redeliver_now(svc, sel)
    except (TimeExprError, RedeliveryError) as exc:
        raise ValueError(str(exc)) from exc
    return {
        "Redelivered": [
            {"OriginalID": r.original_id, "ID": r.new_id, "Error": r.error} for r in done
        ]
    }
