"""Finding an outgoing message (queued or retired) that an incoming report is about.

For plugins that match reports to our mail (spam complaints): they read the
core's ``queue`` and ``retired`` tables only through these functions.
Queued entries are looked at first: a report can arrive while other
recipients of the message still wait for a retry.
"""

from __future__ import annotations

from core.store.models import QueueEntry, RetiredEntry
from core.store.sql import Connection

Outgoing = QueueEntry | RetiredEntry


def outgoing_by_fromid(conn: Connection, from_id: str) -> Outgoing | None:
    """The entry with this fromid (unique per recipient), or None."""
    if not from_id:
        return None
    row = conn.execute("SELECT * FROM queue WHERE from_id = ?", (from_id,)).fetchone()
    if row is not None:
        return QueueEntry.from_row(row)
    row = conn.execute("SELECT * FROM retired WHERE from_id = ?", (from_id,)).fetchone()
    return None if row is None else RetiredEntry.from_row(row)


def outgoing_by_message_id(
    conn: Connection, account: str, message_id: str, limit: int = 1000
) -> list[Outgoing]:
    """Entries (one per recipient) that ``account`` sent with this Message-ID header value.

    ``message_id`` is compared as stored (with angle brackets, as composed).
    """
    if not message_id:
        return []
    out: list[Outgoing] = []
    for table, cls in (("queue", QueueEntry), ("retired", RetiredEntry)):
        rows = conn.execute(
            f"SELECT * FROM {table} WHERE sender_account = ? AND message_id = ? ORDER BY id LIMIT ?",
            (account, message_id, limit),
        )
        out.extend(cls.from_row(r) for r in rows)
    return out
