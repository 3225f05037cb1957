"""One access-log line and one measurement per webapi method call.

The line carries what an operator needs to follow a request: the account,
the method, the HTTP status, mox's result (``ok``, ``badauth`` or the
error code), the duration and the remote IP. A refused login also logs an
authentication failure line (protocol, mechanism, remote IP, user), the
same shape the SMTP server logs.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
from typing import TYPE_CHECKING, Any

import trio

from core import metrics
from core.mlog import kv
from plugins.webapi.answers import Answer, RequestView

if TYPE_CHECKING:
    from quart import Response

log = logging.getLogger("moxtrio.webapi")

#: Send results as mox's mox_webapi_submission_total labels them.
SUBMISSION_RESULTS = {
    "ok": "ok",
    "badFrom": "badfrom",
    "messageLimitReached": "messagelimiterror",
    "recipientLimitReached": "recipientlimiterror",
    "server": "queueerror",
}


def _basic_user(header: str | None) -> str:
    """The user name of a Basic Authorization header (never the password)."""
    if not header or not header.lower().startswith("basic "):
        return ""
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return ""
    return decoded.split(":", 1)[0]


def _result(answer: Answer) -> str:
    if answer.status == 200:
        return "ok"
    if answer.status in (401, 403, 429):
        return "badauth"
    try:
        data = json.loads(answer.body)
        return str(data.get("Code") or answer.status)
    except (ValueError, AttributeError):
        return str(answer.status)


async def logged_call(service: Any, name: str) -> Response:
    """Run the webapi method call of the current Quart request; log and measure it."""
    return (await logged_answer(service, name, RequestView.from_quart())).response()


async def logged_answer(service: Any, name: str, req: RequestView) -> Answer:
    """Run a webapi method call through ``service`` and log/measure it."""
    t0 = trio.current_time()
    answer: Answer = await service.answer(name, req)
    seconds = trio.current_time() - t0
    result = _result(answer)
    metrics.record(metrics.WebapiCall(name, result, seconds))
    if name == "Send" and result in SUBMISSION_RESULTS:
        metrics.record(metrics.WebapiSubmission(SUBMISSION_RESULTS[result]))
    if not log.isEnabledFor(logging.INFO):
        return answer  # the user and account below are only for the lines
    client = req.scope.get("client")
    remote_ip = str(client[0]) if client else ""
    user = _basic_user(req.headers.get("Authorization"))
    account = (service.ctx.config.account_for_login(user) or "") if user and result != "badauth" else ""
    if result == "badauth" and answer.status == 401:
        log.info(
            "authentication failed",
            extra=kv(protocol="webapi", mechanism="httpbasic", remoteip=remote_ip, user=user),
        )
    log.info(
        "webapi request",
        extra=kv(
            method=name,
            account=account,
            status=answer.status,
            result=result,
            duration=f"{seconds:.3f}s",
            remoteip=remote_ip,
        ),
    )
    return answer
