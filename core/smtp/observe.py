"""Log lines and measurements for SMTP transactions and failed logins.

Kept out of the session and backend so those stay about the protocol: they
call :func:`observe_data` once per DATA result and :func:`auth_failure` for
the attributes of an authentication failure line.
"""

from __future__ import annotations

import logging
from typing import Any

from core import metrics, mlog
from core.mlog import kv

log = logging.getLogger("moxtrio.smtp")

#: Submission failures by enhanced code, as mox's submission metric labels them.
_SUBMISSION_RESULTS = {
    "5.6.0": "badmessage",
    "5.7.1": "badfrom",
    "5.1.7": "badfrom",
    "5.5.3": "recipientlimiterror",
    "4.5.3": "recipientlimiterror",
    "4.3.0": "queueerror",
}


def auth_failure(info: Any, mechanism: str, user: str) -> dict[str, Any]:
    """``extra=`` for an authentication failure line (never the password)."""
    return kv(
        protocol=info.listener_kind, mechanism=mechanism, remoteip=info.remote_ip, user=user, cid=info.conn_id
    )


def observe_data(info: Any, envelope: Any, reply: Any) -> None:
    """One line and one count per message received (submission or delivery)."""
    ok = 200 <= reply.code < 300
    if info.submission:
        result = "ok" if ok else _SUBMISSION_RESULTS.get(reply.enhanced, "queueerror" if reply.code < 500 else "badmessage")
        metrics.record(metrics.SMTPSubmission(result))
        what = "submission"
    else:
        result = "delivered" if ok else ("reject" if reply.code >= 500 else "delivererror")
        metrics.record(metrics.SMTPDelivery(result, "" if ok else reply.enhanced))
        what = "incoming delivery"
    log.info(
        what,
        extra=kv(
            cid=info.conn_id,
            account=info.account,
            remoteip=info.remote_ip,
            **{"from": str(envelope.mail_from)},
            rcpts=len(envelope.recipients),
            result=result,
            code=reply.code,
            secode=reply.enhanced,
        ),
    )


def trace_read(logger: logging.Logger, line: bytes, *, auth: bool) -> None:
    """Trace a line from the client; credentials only at traceauth.

    ``auth``: the line answers an AUTH challenge (all of it is a credential).
    For an ``AUTH`` command, the mechanism shows and the initial response is
    a credential.
    """
    if logger.getEffectiveLevel() > mlog.TRACE:
        return
    if auth:
        mlog.trace(logger, mlog.TRACEAUTH, "RC: ", line)
    elif line[:5].lower() == b"auth ":
        head, _, rest = line.partition(b" ")
        mech, _, initial = rest.partition(b" ")
        prefix = f"RC: {head.decode('ascii', 'replace')} {mech.decode('ascii', 'replace')} "
        mlog.trace(logger, mlog.TRACEAUTH, prefix, initial) if initial else mlog.trace(
            logger, mlog.TRACE, "RC: ", line
        )
    else:
        mlog.trace(logger, mlog.TRACE, "RC: ", line)


def trace_write(logger: logging.Logger, data: bytes) -> None:
    """Trace our replies, one line each."""
    if logger.getEffectiveLevel() > mlog.TRACE:
        return
    for line in data.split(b"\r\n"):
        if line:
            mlog.trace(logger, mlog.TRACE, "LW: ", line)
