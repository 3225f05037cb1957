"""Spam complaints (RFC 5965 feedback reports) about mail we sent (a moxtrio extension).

A mailbox provider's abuse report arrives as ordinary mail (to a fromid
address, or to the feedback address registered with the provider). Before
it is stored, :func:`inspect` recognises and parses it in a worker thread;
inside the delivery transaction :func:`on_report` matches it to the
outgoing message, in this order:

1. a fromid: in the address the report was sent to, in the report's
   ``Original-Mail-From``, or in the original's ``Return-Path``;
2. the original's ``Message-ID`` among the messages the receiving account
   sent, the complaining recipient picked by ``Original-Rcpt-To`` or the
   original's ``To`` (providers redact differently; with a single recipient
   no address is needed).

A match adds the recipient to the sending account's suppression list with
category ``complaint`` (unless listed already) and raises the outgoing
event ``complaint`` (webhooks send it only to accounts that list
``complaint`` in ``OutgoingWebhook.Events``). The report stays in the
mailbox but is not an incoming message for webhooks. A report that
matches nothing is ordinary mail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import trio

from core.message.arf import PARSE_MAX, FeedbackReport, is_feedback_report, parse_feedback_report
from core.message.headers import message_id_of
from core.queue.dsnmatch import fromid_of
from core.queue.events import publish_outgoing
from core.store.outgoing import Outgoing, outgoing_by_fromid, outgoing_by_message_id
from core.store.sql import Connection
from moxtrio import IncomingDelivered, OutgoingEvent
from plugins.suppression.base import recipient_of_entry
from plugins.suppression.records import Suppression, find_suppression, insert_suppression

log = logging.getLogger("moxtrio.suppression.complaints")

HEAD_BYTES = 64 * 1024


@dataclass
class Complaint:
    """A parsed feedback report and the recipients' copies already handled."""

    report: FeedbackReport
    message_id: str
    handled: dict[int, bool] = field(default_factory=dict)


def _read(message_path: str, msg_prefix: bytes) -> Complaint | None:
    with open(message_path, "rb") as fh:
        head = msg_prefix + fh.read(HEAD_BYTES)
        if not is_feedback_report(head):
            return None
        data = head + fh.read(PARSE_MAX + 1 - len(head))
    report = parse_feedback_report(data)
    return None if report is None else Complaint(report, message_id_of(data))


async def inspect(message_path: str, msg_prefix: bytes, data: bytes | None = None) -> Complaint | None:
    """A feedback report in the received message, or None (most mail: a header read).

    With the file's content already in memory (``data``), a message that is
    not a report is recognised without a worker-thread round trip; reports
    are still parsed in a worker thread.
    """
    if data is not None and not is_feedback_report(msg_prefix + data[:HEAD_BYTES]):
        return None
    return await trio.to_thread.run_sync(_read, message_path, msg_prefix)


def _norm_id(v: str) -> str:
    v = v.strip()
    return v if v.startswith("<") else f"<{v}>"


def match(
    conn: Connection, config: Any, delivered: IncomingDelivered, report: FeedbackReport
) -> tuple[Outgoing, bool] | None:
    """The complained-about entry and whether its recipient is known for sure."""
    for addr in (delivered.rcpt_to, report.original_mail_from, report.original_return_path):
        fid = fromid_of(config, addr) if addr else ""
        entry = outgoing_by_fromid(conn, fid) if fid else None
        if entry is not None:
            return entry, True
    if not report.original_message_id:
        return None
    entries = outgoing_by_message_id(conn, delivered.account, _norm_id(report.original_message_id))
    if not entries:
        return None
    wanted = {a.lower() for a in (*report.original_rcpt_to, *report.original_to)}
    for e in entries:
        if e.recipient.lower() in wanted:
            return e, True
    if len({e.recipient for e in entries}) == 1:
        return entries[0], True
    return entries[0], False


def _reason(report: FeedbackReport) -> str:
    who = report.user_agent or report.reporting_mta or "unknown reporter"
    return f"spam complaint (feedback type {report.feedback_type or 'abuse'}, from {who})"


def on_report(
    conn: Connection, ctx: Any, delivered: IncomingDelivered, reports: list[Any]
) -> bool | None:
    """The ``moxtrio_incoming_report`` verdict: True when a complaint was matched."""
    complaint = next((r for r in reports if isinstance(r, Complaint)), None)
    if complaint is None:
        return None
    found = match(conn, ctx.config, delivered, complaint.report)
    if found is None:
        log.info("feedback report for %s matches no outgoing message", delivered.rcpt_to)
        return None
    entry, certain = found
    if entry.id in complaint.handled:
        return True  # the same report delivered to several local recipients
    now = ctx.clock.now()
    suppressing = False
    error = _reason(complaint.report)
    if certain:
        rcpt = recipient_of_entry(entry)
        if find_suppression(conn, entry.sender_account, rcpt.base, now) is None:
            insert_suppression(conn, Suppression(
                account=entry.sender_account, base_address=rcpt.base,
                original_address=rcpt.original, created=now, manual=False,
                reason=error, category="complaint",
            ))
            suppressing = True
    else:
        error += "; complaining recipient not identifiable, not suppressed"
    complaint.handled[entry.id] = suppressing
    event = OutgoingEvent(
        account=entry.sender_account,
        event="complaint",
        queue_msg_id=entry.id,
        from_id=entry.from_id,
        message_id=entry.message_id,
        subject=entry.subject,
        suppressing=suppressing,
        error=error,
        extra=None if entry.extra is None else dict(entry.extra),
        recipient=entry.recipient,
        incoming_message_id=complaint.message_id,
    )
    # Like the core's own events: to the in-transaction observers and the outbox.
    publish_outgoing(conn, ctx, event)
    log.info("spam complaint about message %d to %s (suppressing: %s)", entry.id, entry.recipient,
             suppressing)
    return True
