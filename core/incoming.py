"""Storing mail that arrived over SMTP in the recipients' mailboxes.

One message file (already durable) is shared by every local recipient; the
rows for all of them, and whatever plugins record about the delivery
(incoming webhooks, DSN matching), commit in one transaction before the
SMTP server answers 250.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from core.config.validate import DestinationMatch
from core.events import IncomingDelivered
from core.message.parsed import format_json_time
from core.plugin_api import PluginContext
from core.queue.dsnmatch import apply_incoming, prepare_incoming
from core.queue.loopback import mark_delivered
from core.store import accounts as store_accounts
from core.store import messages as store_messages
from core.store.models import MessageMeta, utcnow
from core.store.sql import Connection

log = logging.getLogger("moxtrio.incoming")


@dataclass
class IncomingRecipient:
    """A recipient as given in RCPT TO, and where it is delivered."""

    localpart: str
    domain: str
    match: DestinationMatch
    #: This recipient's own prefix headers (Delivered-To, Received ... for <rcpt>);
    #: None: the message's ``msg_prefix``.
    msg_prefix: bytes | None = None

    @property
    def rcpt_to(self) -> str:
        return f"{self.localpart}@{self.domain}"


@dataclass
class IncomingMessage:
    """What the SMTP server knows about a received message."""

    file_id: str
    size: int  # including msg_prefix
    msg_prefix: bytes
    mail_from: str
    mail_from_localpart: str
    mail_from_domain: str
    remote_ip: str
    message_id: str
    subject: str
    msg_from: str
    is_dsn: bool
    mail_from_validated: bool = False
    msg_from_validated: bool = False
    dkim_domains: list[str] = field(default_factory=list)
    remote_port: int = 0
    #: The message file's whole content when already in memory (small messages), else None.
    data: bytes | None = None


async def store_incoming(
    ctx: PluginContext, message: IncomingMessage, recipients: list[IncomingRecipient]
) -> list[int]:
    """Insert the message for every recipient and raise the incoming hooks.

    Returns the new message ids, after the commit.
    """
    # On PostgreSQL the body is copied to a temp file for the parsers and the
    # hooks' message_path, valid until the rows are committed.
    async with ctx.store.files.local_copy(message.file_id) as local:
        return await _store_incoming(ctx, message, recipients, str(local))


async def _store_incoming(
    ctx: PluginContext, message: IncomingMessage, recipients: list[IncomingRecipient], path: str
) -> list[int]:
    received = utcnow()
    hooks = ctx.hooks
    # Parse once, outside the writer thread: DSN / fromid matching and the
    # incoming webhook payload both need the message's structure.
    prepared = await prepare_incoming(ctx, path, message.msg_prefix, [r.rcpt_to for r in recipients])
    # Mail from our own queue (a plugin delivering to us) marks its queue entries delivered
    # in this same transaction: stored and marked, or neither.
    loopback = getattr(ctx.queue if ctx.has_queue else None, "loopback", None)
    queue_ids = (
        loopback.entries_for(message.remote_ip, message.remote_port, [(r.localpart, r.domain) for r in recipients])
        if loopback is not None
        else []
    )
    # Plugins that recognise reports about our mail (spam complaints) parse here.
    reports = await hooks.call("moxtrio_incoming_inspect", ctx=ctx, message_path=path,
                               msg_prefix=message.msg_prefix, message_data=message.data)

    def write(conn: Connection) -> list[int]:
        ids = []
        for rcpt in recipients:
            account = rcpt.match.account
            mailbox = rcpt.match.mailbox or "Inbox"
            store_accounts.ensure_account(conn, account)
            try:
                store_accounts.mailbox_by_name(conn, account, mailbox)
            except store_accounts.MailboxNotFound:
                store_accounts.create_mailbox(conn, account, mailbox)
            prefix = message.msg_prefix if rcpt.msg_prefix is None else rcpt.msg_prefix
            meta = MessageMeta(
                mail_from=message.mail_from,
                mail_from_localpart=message.mail_from_localpart,
                mail_from_domain=message.mail_from_domain,
                mail_from_validated=message.mail_from_validated,
                msg_from=message.msg_from,
                msg_from_validated=message.msg_from_validated,
                dkim_domains=list(message.dkim_domains),
                rcpt_to_localpart=rcpt.localpart,
                rcpt_to_domain=rcpt.domain,
                remote_ip=message.remote_ip,
                message_id=message.message_id,
                subject=message.subject,
                is_dsn=message.is_dsn,
                msg_prefix=prefix,
            )
            size = message.size - len(message.msg_prefix) + len(prefix)
            msg_id = store_messages.insert_message(
                conn, account, mailbox, message.file_id, size, received=received, meta=meta
            )
            ids.append(msg_id)
            event = IncomingDelivered(
                account=account,
                message_id=msg_id,
                mailbox=mailbox,
                message_path=path,
                msg_prefix=prefix,
                mail_from=message.mail_from,
                rcpt_to=rcpt.rcpt_to,
                meta=_incoming_meta(msg_id, message, rcpt, mailbox, received),
            )
            # A DSN or reply to a fromid address matched to an outgoing message
            # becomes an outgoing event (DSN: true); anything else is incoming.
            if reports and hooks.first_sync(
                "moxtrio_incoming_report", conn=conn, ctx=ctx, delivered=event, reports=reports
            ):
                continue
            if not apply_incoming(conn, ctx, prepared, event):
                hooks.call_sync("moxtrio_incoming_delivered", conn=conn, ctx=ctx, delivered=event)
        mark_delivered(conn, queue_ids)
        return ids

    return await ctx.store.write(write)


def _incoming_meta(
    msg_id: int, message: IncomingMessage, rcpt: IncomingRecipient, mailbox: str, received: Any
) -> dict[str, Any]:
    return {
        "MsgID": msg_id,
        "MailFrom": message.mail_from,
        "MailFromValidated": message.mail_from_validated,
        "MsgFromValidated": message.msg_from_validated,
        "RcptTo": rcpt.rcpt_to,
        "DKIMVerifiedDomains": list(message.dkim_domains),
        "RemoteIP": message.remote_ip,
        "Received": format_json_time(received),
        "MailboxName": mailbox,
    }
