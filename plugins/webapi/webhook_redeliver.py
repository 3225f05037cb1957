"""The webapi extension method ``WebhookRedeliver``: retired webhooks of the
caller's account sent again, through the core's ``WebhookRedeliverer`` (the
webhooks plugin provides it)."""

from __future__ import annotations

from typing import Any

from quart import Response

from moxtrio import RedeliverQuery, WebhookRedeliverer
from plugins.webapi.errors import WebapiError
from plugins.webapi.extensions import ExtCall, json_result
from plugins.webapi.suppression import provider_call


def _query(args: dict[str, Any]) -> RedeliverQuery:
    ids = args.get("IDs") or []
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        raise WebapiError("user", "IDs must be a list of integers")
    only_failed = args.get("OnlyFailed", False)
    if not isinstance(only_failed, bool):
        raise WebapiError("user", "OnlyFailed must be a boolean")
    times = []
    for name in ("From", "To"):
        v = args.get(name) or ""
        if not isinstance(v, str):
            raise WebapiError("user", f"{name} must be a string")
        times.append(v)
    return RedeliverQuery(ids=list(ids), since=times[0], until=times[1], only_failed=only_failed)


async def webhook_redeliver(call: ExtCall) -> Response:
    """Queue retired webhooks of the caller's account again (new IDs, same payloads).

    Request: ``IDs`` (list), or ``From``/``To`` (RFC 3339 submission times),
    and ``OnlyFailed``. Result: ``{"Redelivered": [{"OriginalID", "ID", "Error"}]}``.
    """
    query = _query(await call.json_request())
    redeliverer = call.ctx.service(WebhookRedeliverer)  # type: ignore[type-abstract]
    if redeliverer is None:
        raise WebapiError("server", "webhooks not available")
    done = await provider_call(lambda: redeliverer.redeliver(call.login.account, query))
    return json_result({
        "Redelivered": [{"OriginalID": r.original_id, "ID": r.id, "Error": r.error} for r in done]
    })
