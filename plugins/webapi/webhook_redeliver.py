"""The webapi extension method ``WebhookRedeliver``: retired webhooks of the
caller's account sent again, through the ``moxtrio_webhook_redeliver`` hook
(the webhooks plugin answers)."""

from __future__ import annotations

from quart import Response

from core.dispatch import HookFailed
from plugins.webapi.errors import WebapiError
from plugins.webapi.extensions import ExtCall, hook_error, json_result


async def webhook_redeliver(call: ExtCall) -> Response:
    """Queue retired webhooks of the caller's account again (new IDs, same payloads).

    Request: ``IDs`` (list), or ``From``/``To`` (RFC 3339 submission times),
    and ``OnlyFailed``. Result: ``{"Redelivered": [{"OriginalID", "ID", "Error"}]}``.
    """
    args = await call.json_request()
    try:
        result = await call.ctx.hooks.first(
            "moxtrio_webhook_redeliver", ctx=call.ctx, account=call.login.account, args=args
        )
    except HookFailed as exc:
        raise hook_error(exc) from None
    if result is None:
        raise WebapiError("server", "webhooks not available")
    return json_result(result)
