"""Raising outgoing delivery events inside the caller's transaction.

One function for every source of events: queue attempts, admin fail/drop,
and later incoming DSNs matched to queued or retired messages. The event is
handed to ``moxtrio_outgoing_event`` observers with the caller's ``conn`` so
their rows (a webhook to send) commit or roll back with the core's.
"""

from __future__ import annotations

from typing import Any

from core.events import EventName, OutgoingEvent
from core.outbox import record_outgoing
from core.store.models import QueueEntry
from core.store.sql import Connection


def enhanced_code(code: int, secode: str) -> str:
    """Webhook form of an enhanced code: ``<code/100>.<secode>`` or ""."""
    if not code or not secode:
        return ""
    return f"{code // 100}.{secode}"


def raise_outgoing_event(
    conn: Connection,
    ctx: Any,
    entry: QueueEntry,
    event: EventName,
    *,
    smtp_code: int = 0,
    secode: str = "",
    error: str = "",
    suppressing: bool = False,
    dsn: bool = False,
    account: str = "",
    incoming_message_id: str | None = None,
) -> OutgoingEvent:
    """Build the event for a queue or retired entry and call the observers.

    ``ctx`` is the PluginContext (or anything with ``hooks``). ``secode``
    is the enhanced code without class (``"1.1"``). Queue events carry
    ``Extra`` as ``{}`` when the message had none; events about an incoming
    message matched to the entry (``incoming_message_id`` set: a DSN, or
    other mail to the entry's fromid address) and DSN-derived events carry
    it as stored (``None``), as mox does. ``account`` is the account the
    event is for (default: the entry's sender).
    """
    extra: dict[str, str] | None
    if dsn or incoming_message_id is not None:
        extra = None if entry.extra is None else dict(entry.extra)
    else:
        extra = dict(entry.extra or {})
    ev = OutgoingEvent(
        account=account or entry.sender_account,
        event=event,
        queue_msg_id=entry.id,
        from_id=entry.from_id,
        message_id=entry.message_id,
        subject=entry.subject,
        dsn=dsn,
        suppressing=suppressing,
        smtp_code=smtp_code,
        smtp_enhanced_code=enhanced_code(smtp_code, secode),
        error=error,
        extra=extra,
        recipient=entry.recipient,
        incoming_message_id=incoming_message_id or "",
    )
    publish_outgoing(conn, ctx, ev)
    return ev


def publish_outgoing(conn: Connection, ctx: Any, ev: OutgoingEvent) -> None:
    """Hand an outgoing event to the in-transaction observers and to the outbox."""
    ctx.hooks.call_sync("moxtrio_outgoing_event", conn=conn, ctx=ctx, event=ev)
    record_outgoing(conn, ctx, ev)
