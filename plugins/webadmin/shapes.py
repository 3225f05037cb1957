"""mox's JSON shapes for the admin API's queue objects and filters.

The filters of the webhook queue are declared here with mox's field names
rather than imported: a plugin never imports another plugin, and the
webhooks service reads only these attributes.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from core.gofmt import format_rfc3339_nano
from core.queue.jsonfmt import attempt_json, ip_domain, retired_json
from core.store.models import RetiredEntry
from moxtrio import QueueEntry


def _bytes(b: bytes) -> str | None:
    return base64.b64encode(b).decode("ascii") if b else None


def retired_msg_json(e: RetiredEntry) -> dict[str, Any]:
    """A retired entry as mox's ``MsgRetired``, its attempts as :func:`attempt_json`."""
    d = retired_json(e)
    d["Results"] = [attempt_json(r) for r in e.results] or None
    return d


def msg_json(e: QueueEntry) -> dict[str, Any]:
    """A queue entry as mox's ``queue.Msg``, fields in mox's order."""
    return {
        "ID": e.id,
        "BaseID": e.base_id,
        "Queued": format_rfc3339_nano(e.queued),
        "Hold": e.hold,
        "SenderAccount": e.sender_account,
        "SenderLocalpart": e.sender_localpart,
        "SenderDomain": ip_domain(e.sender_domain, e.sender_domain_str),
        "SenderDomainStr": e.sender_domain_str,
        "FromID": e.from_id,
        "RecipientLocalpart": e.recipient_localpart,
        "RecipientDomain": ip_domain(e.recipient_domain, e.recipient_domain_str),
        "RecipientDomainStr": e.recipient_domain_str,
        "Attempts": e.attempts,
        "MaxAttempts": e.max_attempts,
        "DialedIPs": e.dialed_ips,
        "NextAttempt": format_rfc3339_nano(e.next_attempt),
        "LastAttempt": format_rfc3339_nano(e.last_attempt),
        "Results": [attempt_json(r) for r in e.results] or None,
        "Has8bit": e.has8bit,
        "SMTPUTF8": e.smtputf8,
        "IsDMARCReport": e.is_dmarc_report,
        "IsTLSReport": e.is_tls_report,
        "Size": e.size,
        "MessageID": e.message_id,
        "MsgPrefix": _bytes(e.msg_prefix),
        "Subject": e.subject,
        "DSNUTF8": _bytes(e.dsn_utf8),
        "Transport": e.transport,
        "RequireTLS": e.require_tls,
        "FutureReleaseRequest": e.future_release_request,
        "Extra": e.extra,
    }


@dataclass
class HoldRuleIn:
    """mox's ``queue.HoldRule`` as a parameter: the ``*Str`` fields are what counts."""

    ID: int = 0
    Account: str = ""
    SenderDomain: Any = None
    RecipientDomain: Any = None
    SenderDomainStr: str = ""
    RecipientDomainStr: str = ""
