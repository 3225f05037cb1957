"""Adding messages to the queue: the one function SMTP submission and webapi Send share.

As mox's queue: one entry per recipient, sharing the message file and (when all
entries have the same sender path and prefix) one BaseID; hold rules and
other plugins see the entries inside the transaction that inserts them
(``moxtrio_queue_adding``); a fromid already in use fails the whole add with
:class:`~core.store.queue_rows.FromIDNotUnique`; one "outgoing" record per
recipient counts toward the account's daily limits (webapi sends count
too, unlike mox: docs/differences.md, item 7). Nothing is acknowledged before the commit.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from core.address import Address, domain_to_ascii
from core.dispatch import HookDispatcher
from core.store.messages import record_outgoing
from core.store.models import QueueEntry
from core.store.queue_rows import FromIDNotUnique, insert_queue_entry
from core.store.sql import Connection

__all__ = [
    "AddRecipient",
    "AddRequest",
    "FromIDNotUnique",
    "QueueAddError",
    "domain_fields",
    "fromid_address",
    "generate_fromid",
]


class QueueAddError(ValueError):
    """The add request itself is unusable (no recipients, bad file id...)."""


def generate_fromid() -> str:
    """16 random bytes, base64url without padding: 22 chars of ``A-Za-z0-9-_``."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def fromid_address(mail_from: Address, separator: str, fromid: str) -> Address:
    """MAIL FROM with a fromid: (localpart up to the first separator) + sep + fromid.

    ``mox+zzz@localhost`` with ``+`` and ``4HT-…`` → ``mox+4HT-…@localhost``, as mox's queue does.
    """
    if not separator:
        raise QueueAddError("fromid needs a catchall separator for the sender domain")
    base = mail_from.localpart.split(separator, 1)[0]
    return Address(base + separator + fromid, mail_from.domain)


def domain_fields(domain: str) -> tuple[str, str]:
    """(ASCII form or bare IP, Unicode form or ``[ip]``) of an address domain."""
    if domain.startswith("[") and domain.endswith("]"):
        inner = domain[1:-1]
        if inner[:5].lower() == "ipv6:":
            inner = inner[5:]
        ip = str(ipaddress.ip_address(inner))
        return ip, f"[{ip}]"
    if not domain:
        return "", ""
    return domain_to_ascii(domain), domain


@dataclass
class AddRecipient:
    """One recipient of a submission.

    ``from_id``: the fromid for this recipient ("" = none, or generated when
    the request has ``use_fromid``). ``mail_from``: this recipient's exact
    MAIL FROM when the caller built it (e.g. a client-chosen empty fromid
    giving ``mox+@…``); otherwise it is derived from the request's
    ``mail_from`` and the fromid. ``msg_prefix``: per-recipient prefix
    (e.g. a ``Received … for <rcpt>`` header) overriding the request's.
    """

    address: Address
    from_id: str = ""
    mail_from: Address | None = None
    msg_prefix: bytes | None = None


@dataclass
class AddRequest:
    """What a submitter hands to :meth:`core.queue.service.QueueService.add`.

    ``file_id`` names a message file already stored durably with
    ``store.files``; on success the queue rows own it (all recipients share
    it), on failure it is removed unless ``keep_file_on_failure``. ``size``
    is len(prefix) + file size (computed when None). ``mail_from`` is None
    for the null sender (DSNs). ``next_attempt`` is the future release time
    (None = now) with ``future_release_request`` ``for;<s>`` / ``until;<t>``.
    ``fromid_separator`` overrides the sender domain's first catchall
    separator for fromid MAIL FROMs; ``use_fromid`` generates a fromid for
    each recipient without one (webapi). ``in_transaction`` is called with
    the inserted entries inside the transaction that inserts them, so what
    it writes (e.g. an idempotency record) commits or rolls back with them.
    """

    account: str
    mail_from: Address | None
    recipients: list[AddRecipient]
    file_id: str
    msg_prefix: bytes = b""
    size: int | None = None
    has8bit: bool = False
    smtputf8: bool = False
    message_id: str = ""
    subject: str = ""
    extra: dict[str, str] | None = None
    require_tls: bool | None = None
    next_attempt: datetime | None = None
    future_release_request: str = ""
    is_dsn: bool = False
    transport: str = ""
    max_attempts: int = 0
    use_fromid: bool = False
    fromid_separator: str = ""
    record_outgoing: bool = True
    keep_file_on_failure: bool = False
    is_dmarc_report: bool = False
    is_tls_report: bool = False
    dsn_utf8: bytes = b""
    #: Size of the stored file when the caller knows it (saves a stat).
    file_size: int | None = None
    in_transaction: Callable[[Connection, list[QueueEntry]], None] | None = None


def build_entries(
    req: AddRequest, now: datetime, file_size: int, separator: str
) -> list[QueueEntry]:
    """The queue entries of a request (not inserted), one per recipient, in order."""
    if not req.recipients:
        raise QueueAddError("at least one recipient required")
    entries: list[QueueEntry] = []
    for rcpt in req.recipients:
        from_id = rcpt.from_id
        if not from_id and req.use_fromid and rcpt.mail_from is None:
            from_id = generate_fromid()
        sender = rcpt.mail_from
        if sender is None and req.mail_from is not None:
            sender = (
                fromid_address(req.mail_from, req.fromid_separator or separator, from_id)
                if from_id
                else req.mail_from
            )
        if sender is None:
            s_local, s_dom, s_dom_str = "", "", ""
        else:
            s_dom, s_dom_str = domain_fields(sender.domain)
            s_local = sender.localpart
        r_dom, r_dom_str = domain_fields(rcpt.address.domain)
        prefix = req.msg_prefix if rcpt.msg_prefix is None else rcpt.msg_prefix
        size = (
            req.size
            if req.size is not None and rcpt.msg_prefix is None
            else len(prefix) + file_size
        )
        entries.append(
            QueueEntry(
                queued=now,
                sender_account=req.account,
                sender_localpart=s_local,
                sender_domain=s_dom,
                sender_domain_str=s_dom_str,
                from_id=from_id,
                recipient_localpart=rcpt.address.localpart,
                recipient_domain=r_dom,
                recipient_domain_str=r_dom_str,
                max_attempts=req.max_attempts,
                next_attempt=req.next_attempt or now,
                has8bit=req.has8bit,
                smtputf8=req.smtputf8,
                is_dmarc_report=req.is_dmarc_report,
                is_tls_report=req.is_tls_report,
                is_dsn=req.is_dsn,
                size=size,
                message_id=req.message_id,
                msg_prefix=prefix,
                subject=req.subject,
                dsn_utf8=req.dsn_utf8,
                transport=req.transport,
                require_tls=req.require_tls,
                future_release_request=req.future_release_request,
                extra=None if req.extra is None else dict(req.extra),
                file_id=req.file_id,
            )
        )
    return entries


def insert_entries(
    conn: Connection,
    hooks: HookDispatcher,
    entries: list[QueueEntry],
    *,
    record: bool,
    now: datetime,
    after: Callable[[Connection, list[QueueEntry]], None] | None = None,
) -> list[QueueEntry]:
    """In-transaction part of an add: hooks, fromid check, insert, BaseID, outgoing records.

    Raises FromIDNotUnique (and whatever a verdict hook raises); the caller's
    ``store.write`` then rolls all of it back.
    """
    hooks.call_sync("moxtrio_queue_adding", conn=conn, entries=entries)
    first = entries[0]
    eligible = len(entries) > 1 and all(
        e.sender_localpart == first.sender_localpart
        and e.sender_domain == first.sender_domain
        and e.msg_prefix == first.msg_prefix
        for e in entries
    )
    base_id = 0
    for i, e in enumerate(entries):
        if eligible and i > 0:
            e.base_id = base_id
        insert_queue_entry(conn, e)
        if eligible and i == 0:
            base_id = e.id
            e.base_id = base_id
            conn.execute("UPDATE queue SET base_id = ? WHERE id = ?", (base_id, e.id))
    if record:
        record_outgoing(conn, first.sender_account, [e.recipient for e in entries], now)
    if after is not None:
        after(conn, entries)
    return entries
