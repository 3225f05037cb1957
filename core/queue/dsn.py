"""DSNs the queue sends to the local sender.

Two steps, because the durability order puts the file before the rows:
:func:`prepare_dsn` composes the DSN and stores its file (fsynced) outside
any transaction; :func:`store_dsn` inserts the message row into the sender
account's Inbox inside the transaction that records the failure, so the
DSN and the failure bookkeeping commit together. A prepared DSN whose
transaction does not use it leaves an unreferenced file that the caller
removes after commit.

Not sent for DSNs themselves (null sender) and, for "delayed", not for
DMARC reports. If the sender account is gone, the postmaster account and
mailbox from mox.conf get it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import trio

from core.message.compose import new_message_id
from core.message.dsn import DSNRecipient, compose_dsn, dsn_prefix
from core.message.headers import header_section
from core.store.accounts import MailboxNotFound, create_mailbox, get_account, mailbox_by_name
from core.store.messages import insert_message
from core.store.models import MessageMeta, QueueEntry
from core.store.sql import Connection

log = logging.getLogger("moxtrio.queue.dsn")

HEADER_READ_LIMIT = 256 * 1024

DSNKind = Literal["failed", "delayed"]


@dataclass
class PreparedDSN:
    """A composed DSN whose file is on disk, waiting for its row."""

    entry_id: int
    account: str
    kind: DSNKind
    file_id: str
    size: int
    prefix: bytes
    message_id: str
    subject: str


def wants_dsn(entry: QueueEntry, kind: DSNKind) -> bool:
    """No DSN for a DSN (null sender); no delayed DSN for DMARC reports."""
    if entry.is_dsn or not entry.sender_localpart or not entry.sender_domain:
        return False
    return not (kind == "delayed" and entry.is_dmarc_report)


def _read_headers(path: str, prefix: bytes) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read(HEADER_READ_LIMIT)
    except OSError:
        data = b""
    return header_section(prefix + data)


async def prepare_dsn(
    ctx: Any,
    entry: QueueEntry,
    kind: DSNKind,
    *,
    error: str,
    smtp_code: int = 0,
    secode: str = "",
    reply_lines: list[str] | None = None,
    remote_host: str = "",
    now: datetime,
) -> PreparedDSN:
    """Compose the DSN for one entry and store its file durably."""
    hostname = ctx.config.static.Hostname
    if entry.file_id:
        async with ctx.store.files.local_copy(entry.file_id) as path:
            headers = await trio.to_thread.run_sync(_read_headers, str(path), entry.msg_prefix)
    else:
        headers = header_section(entry.msg_prefix)
    cls = "5" if kind == "failed" else "4"
    lines = list(reply_lines or [])
    rcpt = DSNRecipient(
        address=entry.recipient,
        action=kind,
        status=f"{cls}.{secode or '0.0'}",
        status_comment=error,
        remote_mta=remote_host if smtp_code else "",
        diagnostic_code=" ".join(lines) if smtp_code and lines else "",
        last_attempt=entry.last_attempt or now,
    )
    mid = new_message_id(hostname)
    sender = entry.sender_address
    data = compose_dsn(
        hostname=hostname,
        to_addr=sender,
        kind=kind,
        recipients=[rcpt],
        arrival=entry.queued,
        original_headers=headers,
        original_message_id=entry.message_id,
        smtputf8=entry.smtputf8,
        error=error,
        smtp_lines=lines,
        message_id=mid,
        date=now,
        future_release_request=entry.future_release_request,
    )
    prefix = dsn_prefix(f"postmaster@{hostname}", sender)
    file_id = await ctx.store.files.store(data)
    return PreparedDSN(
        entry_id=entry.id,
        account=entry.sender_account,
        kind=kind,
        file_id=file_id,
        size=len(prefix) + len(data),
        prefix=prefix,
        message_id=f"<{mid}>",
        subject="mail delivery failed" if kind == "failed" else "mail delivery delayed",
    )


def store_dsn(conn: Connection, ctx: Any, dsn: PreparedDSN, now: datetime) -> int | None:
    """Insert the DSN into the sender's Inbox (or the postmaster mailbox); its message ID.

    Never raises for a missing account or mailbox: a DSN that can't be
    placed is logged and dropped rather than undoing the failure bookkeeping.
    """
    meta = MessageMeta(
        is_dsn=True, message_id=dsn.message_id, subject=dsn.subject, msg_prefix=dsn.prefix
    )
    targets: list[tuple[str, str]] = []
    if ctx.config.account(dsn.account) is not None:
        targets.append((dsn.account, "Inbox"))
    pm = ctx.config.static.Postmaster
    if pm.Account:
        targets.append((pm.Account, pm.Mailbox or "Inbox"))
    for account, mailbox in targets:
        if get_account(conn, account) is None:
            continue
        try:
            mb = mailbox_by_name(conn, account, mailbox)
        except MailboxNotFound:
            mb = create_mailbox(conn, account, mailbox)
        return insert_message(conn, account, mb, dsn.file_id, dsn.size, received=now, meta=meta)
    log.error("no account to deliver the %s DSN for queue message %d to", dsn.kind, dsn.entry_id)
    return None
