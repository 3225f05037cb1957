"""The JSON bodies mox posts, field for field.

Computed once when the hook is queued and stored as text, so every attempt
sends identical bytes (and a signature covers exactly what was queued).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from core.message.parsed import format_json_time
from moxtrio import IncomingDelivered, OutgoingEvent
from plugins.webhooks.gojson import marshal, sorted_map

#: IncomingMeta keys in mox's order.
META_KEYS = (
    "MsgID",
    "MailFrom",
    "MailFromValidated",
    "MsgFromValidated",
    "RcptTo",
    "DKIMVerifiedDomains",
    "RemoteIP",
    "Received",
    "MailboxName",
    "Automated",
)
_META_DEFAULTS: dict[str, Any] = {
    "MsgID": 0,
    "MailFrom": "",
    "MailFromValidated": False,
    "MsgFromValidated": False,
    "RcptTo": "",
    "DKIMVerifiedDomains": [],
    "RemoteIP": "",
    "Received": None,
    "MailboxName": "",
    "Automated": False,
}


def outgoing_payload(event: OutgoingEvent, queued: datetime) -> str:
    """mox's ``webhook.Outgoing`` for an event (Extra exactly as the event carries it)."""
    return marshal(
        {
            "Version": 0,
            "Event": event.event,
            "DSN": event.dsn,
            "Suppressing": event.suppressing,
            "QueueMsgID": event.queue_msg_id,
            "FromID": event.from_id,
            "MessageID": event.message_id,
            "Subject": event.subject,
            "WebhookQueued": format_json_time(queued),
            "SMTPCode": event.smtp_code,
            "SMTPEnhancedCode": event.smtp_enhanced_code,
            "Error": event.error,
            "Extra": sorted_map(event.extra),
        }
    )


def incoming_meta(delivered: IncomingDelivered, automated: bool) -> dict[str, Any]:
    """IncomingMeta in mox's key order, from what the core recorded."""
    meta = dict(_META_DEFAULTS)
    meta.update({k: v for k, v in delivered.meta.items() if k in _META_DEFAULTS})
    meta["MsgID"] = delivered.meta.get("MsgID", delivered.message_id)
    meta.setdefault("MailboxName", delivered.mailbox)
    if not meta["MailboxName"]:
        meta["MailboxName"] = delivered.mailbox
    if not meta["RcptTo"]:
        meta["RcptTo"] = delivered.rcpt_to
    meta["Automated"] = automated
    if meta["DKIMVerifiedDomains"] is None:
        meta["DKIMVerifiedDomains"] = []
    return {k: meta[k] for k in META_KEYS}


def incoming_payload(fields: dict[str, Any], meta: dict[str, Any]) -> str:
    """mox's ``webhook.Incoming``: Version, the message fields (From…Structure), Meta."""
    return marshal({"Version": 0, **fields, "Meta": meta})
