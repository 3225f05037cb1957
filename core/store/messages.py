"""Messages in mailboxes, their flags and keywords, and outgoing-limit records.

Plain synchronous functions of a ``conn`` (call inside ``store.write``/
``store.read``). Exceptions carry mox's error texts so the webapi can wrap
them as ``getting message: …`` etc. without translating.

Deleting keeps a tombstone row (``expunged = 1``, no file): mox answers a
second delete of the same ID with ``message was removed``, not with ``no
such message``, so the store must remember that the ID existed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from core.store.accounts import mailbox_by_id, mailbox_by_name
from core.store.files import MessageFiles
from core.store.models import (
    SYSTEM_FLAGS,
    Mailbox,
    Message,
    MessageMeta,
    to_db_time,
    utcnow,
)
from core.store.sql import Connection

if TYPE_CHECKING:  # pragma: no cover
    from core.store.db import Store


class MessageError(Exception):
    """Base of the message errors (all user-visible texts match mox)."""


class InvalidMessageID(MessageError, ValueError):
    def __init__(self) -> None:
        super().__init__("invalid zero message id")


class MessageNotFound(MessageError, LookupError):
    def __init__(self, msg_id: int = 0) -> None:
        super().__init__("no such message")
        self.msg_id = msg_id


class MessageRemoved(MessageError, LookupError):
    """The message existed but was deleted (expunged)."""

    def __init__(self, msg_id: int = 0) -> None:
        super().__init__("message was removed")
        self.msg_id = msg_id


class AlreadyInMailbox(MessageError, ValueError):
    def __init__(self, msg_id: int) -> None:
        super().__init__(f"message {msg_id} already in destination mailbox")


class InvalidFlag(MessageError, ValueError):
    """Text as mox: ``invalid keyword <lowercased flag>`` (webapi adds ``parsing flags: ``)."""

    def __init__(self, flag: str) -> None:
        super().__init__(f"invalid keyword {flag}")
        self.flag = flag


# --------------------------------------------------------------------------
# flags
# --------------------------------------------------------------------------

_KEYWORD_FORBIDDEN = set('(){%*"\\]')


def parse_flags(flags: Iterable[str]) -> tuple[set[str], list[str]]:
    """Split flags into (system flags, keywords), lowercased, validated as mox does.

    Keywords must be printable ASCII 0x21-0x7e without ``(){%*"\\]``; so
    ``\\recent`` or ``bad flag`` are refused. Duplicates collapse.
    """
    system: set[str] = set()
    keywords: list[str] = []
    for raw in flags:
        f = raw.lower()
        if f in SYSTEM_FLAGS:
            system.add(f)
            continue
        if not f or any(not (0x21 <= ord(c) <= 0x7E) or c in _KEYWORD_FORBIDDEN for c in f):
            raise InvalidFlag(f)
        if f not in keywords:
            keywords.append(f)
    return system, keywords


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------

_SELECT = (
    "SELECT m.*, b.name AS mailbox_name FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
)


def _mailbox(conn: Connection, account: str, mailbox: str | Mailbox | int) -> Mailbox:
    if isinstance(mailbox, Mailbox):
        return mailbox
    if isinstance(mailbox, int):
        mb = mailbox_by_id(conn, mailbox)
        if mb.account != account:
            raise LookupError(f"mailbox {mailbox} is not in account {account!r}")
        return mb
    return mailbox_by_name(conn, account, mailbox)


def insert_message(
    conn: Connection,
    account: str,
    mailbox: str | Mailbox | int,
    file_id: str,
    size: int,
    *,
    received: datetime | None = None,
    meta: MessageMeta | None = None,
    flags: Iterable[str] = (),
) -> int:
    """Add a message whose file is already stored durably; returns its ID.

    ``size`` is the total size including ``meta.msg_prefix``. ``flags``
    may mix system flags and keywords.
    """
    if not MessageFiles.valid_id(file_id):
        raise ValueError(f"invalid message file id {file_id!r}")
    mb = _mailbox(conn, account, mailbox)
    meta = meta or MessageMeta()
    system, keywords = parse_flags(flags)
    cols: dict[str, object] = {
        "account": account,
        "mailbox_id": mb.id,
        "file_id": file_id,
        "size": size,
        "received": to_db_time(received or utcnow()),
        "keywords": json.dumps(sorted(keywords)),
        "mail_from": meta.mail_from,
        "mail_from_localpart": meta.mail_from_localpart,
        "mail_from_domain": meta.mail_from_domain,
        "mail_from_validated": int(meta.mail_from_validated),
        "msg_from": meta.msg_from,
        "msg_from_validated": int(meta.msg_from_validated),
        "rcpt_to_localpart": meta.rcpt_to_localpart,
        "rcpt_to_domain": meta.rcpt_to_domain,
        "remote_ip": meta.remote_ip,
        "message_id": meta.message_id,
        "subject": meta.subject,
        "is_dsn": int(meta.is_dsn),
        "dkim_domains": json.dumps(list(meta.dkim_domains)),
        "msg_prefix": bytes(meta.msg_prefix),
    }
    for f in system:
        cols[SYSTEM_FLAGS[f]] = 1
    names = ", ".join(cols)
    marks = ", ".join("?" for _ in cols)
    cur = conn.execute(f"INSERT INTO messages ({names}) VALUES ({marks}) RETURNING id", tuple(cols.values()))
    return int(cur.fetchone()[0])


def get_message(conn: Connection, account: str, msg_id: int) -> Message:
    """The message, or InvalidMessageID / MessageNotFound / MessageRemoved.

    A message of another account is "not found": IDs are global, and an
    account must not learn that someone else's exist.
    """
    if msg_id == 0:
        raise InvalidMessageID()
    row = conn.execute(f"{_SELECT} WHERE m.id = ? AND m.account = ?", (msg_id, account)).fetchone()
    if row is None:
        raise MessageNotFound(msg_id)
    if row["expunged"]:
        raise MessageRemoved(msg_id)
    return Message.from_row(row)


def list_messages(
    conn: Connection,
    account: str,
    mailbox: str | Mailbox | int | None = None,
    *,
    after_id: int = 0,
    limit: int | None = None,
) -> list[Message]:
    """Messages (not expunged) in ID order, optionally of one mailbox, paged by ID."""
    q = f"{_SELECT} WHERE m.account = ? AND m.expunged = 0 AND m.id > ?"
    args: list[object] = [account, after_id]
    if mailbox is not None:
        q += " AND m.mailbox_id = ?"
        args.append(_mailbox(conn, account, mailbox).id)
    q += " ORDER BY m.id"
    if limit is not None:
        q += " LIMIT ?"
        args.append(limit)
    return [Message.from_row(r) for r in conn.execute(q, args)]


def _store_flags(
    conn: Connection, msg: Message, flags: set[str], keywords: list[str]
) -> Message:
    sets = ", ".join(f"{col} = ?" for col in SYSTEM_FLAGS.values())
    values = [int(f in flags) for f in SYSTEM_FLAGS]
    conn.execute(
        f"UPDATE messages SET {sets}, keywords = ? WHERE id = ?",
        (*values, json.dumps(sorted(set(keywords))), msg.id),
    )
    return get_message(conn, msg.account, msg.id)


def set_flags(conn: Connection, account: str, msg_id: int, flags: Iterable[str]) -> Message:
    """Replace all system flags and keywords."""
    msg = get_message(conn, account, msg_id)
    system, keywords = parse_flags(flags)
    return _store_flags(conn, msg, system, keywords)


def add_flags(conn: Connection, account: str, msg_id: int, flags: Iterable[str]) -> Message:
    """Set the given flags/keywords, leaving the others (webapi MessageFlagsAdd)."""
    msg = get_message(conn, account, msg_id)
    system, keywords = parse_flags(flags)
    return _store_flags(conn, msg, set(msg.flags) | system, [*msg.keywords, *keywords])


def remove_flags(
    conn: Connection, account: str, msg_id: int, flags: Iterable[str]
) -> Message:
    """Clear the given flags/keywords, case-insensitively (webapi MessageFlagsRemove)."""
    msg = get_message(conn, account, msg_id)
    system, keywords = parse_flags(flags)
    return _store_flags(
        conn, msg, set(msg.flags) - system, [k for k in msg.keywords if k not in keywords]
    )


def move_message(
    conn: Connection,
    account: str,
    msg_id: int,
    dest: str | Mailbox | int,
    *,
    add: Iterable[str] = (),
    remove: Iterable[str] = (),
) -> Message:
    """Move to another mailbox of the account; the message keeps its ID.

    Raises the message errors, MailboxNotFound (exact name match), or
    AlreadyInMailbox. ``add``/``remove`` flags are applied in the same
    step (the caller's automatic junk flags for the destination).
    """
    msg = get_message(conn, account, msg_id)
    mb = _mailbox(conn, account, dest)
    if mb.id == msg.mailbox_id:
        raise AlreadyInMailbox(msg_id)
    conn.execute("UPDATE messages SET mailbox_id = ? WHERE id = ?", (mb.id, msg_id))
    msg = get_message(conn, account, msg_id)
    add_sys, add_kw = parse_flags(add)
    rm_sys, rm_kw = parse_flags(remove)
    if add_sys or add_kw or rm_sys or rm_kw:
        flags = (set(msg.flags) | add_sys) - rm_sys
        kws = [k for k in [*msg.keywords, *add_kw] if k not in rm_kw]
        msg = _store_flags(conn, msg, flags, kws)
    return msg


def delete_message(conn: Connection, account: str, msg_id: int) -> str:
    """Expunge a message; returns its file id.

    The file is not removed here: the caller removes it after the commit
    (``await store.remove_unreferenced([file_id])``), so a rollback never
    leaves a row without its file. See :func:`delete_message_durably`.
    """
    msg = get_message(conn, account, msg_id)
    conn.execute("UPDATE messages SET expunged = 1, file_id = NULL WHERE id = ?", (msg_id,))
    return msg.file_id


async def delete_message_durably(store: Store, account: str, msg_id: int) -> None:
    """Delete, commit, then remove the file if nothing else references it."""
    file_id = await store.write(lambda conn: delete_message(conn, account, msg_id))
    await store.remove_unreferenced([file_id])


# --------------------------------------------------------------------------
# outgoing records for the daily limits
# --------------------------------------------------------------------------

_DAY = timedelta(hours=24)


def account_size(conn: Connection, account: str) -> int:
    """Total size of the account's stored messages (for its storage quota)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(size), 0) FROM messages WHERE account = ? AND expunged = 0", (account,)
    ).fetchone()
    return int(row[0])


def record_outgoing(
    conn: Connection, account: str, recipients: Iterable[str], submitted: datetime
) -> None:
    """One record per recipient (Unicode address) of an SMTP submission."""
    t = to_db_time(submitted)
    conn.executemany(
        "INSERT INTO outgoing (account, recipient, submitted) VALUES (?, ?, ?)",
        [(account, r, t) for r in recipients],
    )


def count_outgoing(conn: Connection, account: str, since: datetime) -> int:
    """Records of the account submitted at or after ``since``."""
    row = conn.execute(
        "SELECT COUNT(*) FROM outgoing WHERE account = ? AND submitted >= ?",
        (account, to_db_time(since)),
    ).fetchone()
    return int(row[0])


def count_first_time_recipients(
    conn: Connection, account: str, new_recipients: Iterable[str], now: datetime
) -> int:
    """First-time recipients in the 24 h window ending at ``now``, counting the new ones.

    A recipient of the window is first-time if there is no record for it
    before its earliest record in the window; a new recipient if there is no
    record for it before ``now`` at all.
    """
    since = to_db_time(now - _DAY)
    count = 0
    rows = conn.execute(
        "SELECT recipient, MIN(submitted) FROM outgoing WHERE account = ? AND submitted >= ?"
        " GROUP BY recipient",
        (account, since),
    ).fetchall()
    for rcpt, earliest in rows:
        if not _has_record_before(conn, account, rcpt, earliest):
            count += 1
    t_now = to_db_time(now)
    for rcpt in dict.fromkeys(new_recipients):
        if not _has_record_before(conn, account, rcpt, t_now):
            count += 1
    return count


def _has_record_before(conn: Connection, account: str, rcpt: str, before: int) -> bool:
    row = conn.execute(
        "SELECT 1 FROM outgoing WHERE account = ? AND recipient = ? AND submitted < ? LIMIT 1",
        (account, rcpt, before),
    ).fetchone()
    return row is not None


#: Submission records younger than this are all kept (the 24 h limits read them).
OUTGOING_KEEP = timedelta(days=7)
#: Most records one prune deletes, so one run never holds the writer for long.
OUTGOING_PRUNE_BATCH = 50_000


def prune_outgoing(conn: Connection, now: datetime, batch: int = OUTGOING_PRUNE_BATCH) -> int:
    """Drop submission records the daily limits can no longer need; returns how many.

    mox keeps every record forever. The limits only count records of the last
    24 hours and ask whether a recipient had *any* record before, so of the
    records older than :data:`OUTGOING_KEEP` only the newest per account and
    recipient is kept: the answers stay exactly mox's while the table stops
    growing with every message sent.
    """
    cutoff = to_db_time(now - OUTGOING_KEEP)
    cur = conn.execute(
        "DELETE FROM outgoing WHERE id IN ("
        " SELECT old.id FROM outgoing AS old WHERE old.submitted < ? AND EXISTS ("
        "  SELECT 1 FROM outgoing AS newer WHERE newer.account = old.account"
        "   AND newer.recipient = old.recipient AND newer.submitted < ?"
        "   AND (newer.submitted > old.submitted"
        "    OR (newer.submitted = old.submitted AND newer.id > old.id)))"
        " LIMIT ?)",
        (cutoff, cutoff, batch),
    )
    return cur.rowcount


def newest_messages(
    conn: Connection, account: str, *, search: str = "", after_id: int = 0, limit: int = 200
) -> list[Message]:
    """An account's messages newest first, for a mail viewer: those after ``after_id``,
    and with ``search`` only those whose subject, From or recipient contains it."""
    q = f"{_SELECT} WHERE m.account = ? AND m.expunged = 0 AND m.id > ?"
    args: list[object] = [account, after_id]
    if search:
        like = "%" + search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        q += (
            " AND (m.subject LIKE ? ESCAPE '\\' OR m.msg_from LIKE ? ESCAPE '\\'"
            " OR (m.rcpt_to_localpart || '@' || m.rcpt_to_domain) LIKE ? ESCAPE '\\')"
        )
        args += [like, like, like]
    q += " ORDER BY m.id DESC LIMIT ?"
    args.append(limit)
    return [Message.from_row(r) for r in conn.execute(q, args)]
