"""Row-level access to the ``queue`` and ``retired`` tables.

Only storage mechanics live here (insert, load, save, retire, the fromid
uniqueness check across both tables); scheduling, backoff and events are
the queue package's job. Synchronous functions of a ``conn``.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Literal

from core.store.models import (
    QUEUE_COLUMNS,
    RETIRED_COLUMNS,
    QueueEntry,
    RetiredEntry,
    to_db_time,
)
from core.store.sql import Connection


class QueueEntryNotFound(LookupError):
    pass


class FromIDNotUnique(ValueError):
    """Text as mox: ``fromid not unique: fromid "x" already present in …``."""

    def __init__(self, from_id: str, where: Literal["queue", "retired"]) -> None:
        place = "message queue" if where == "queue" else "retired message queue"
        super().__init__(f'fromid not unique: fromid "{from_id}" already present in {place}')
        self.from_id = from_id
        self.where = where


def from_id_exists(conn: Connection, from_id: str) -> Literal["queue", "retired"] | None:
    """Where a fromid is in use: the unique index covers each table, this covers both."""
    if not from_id:
        return None
    if conn.execute("SELECT 1 FROM queue WHERE from_id = ?", (from_id,)).fetchone():
        return "queue"
    if conn.execute("SELECT 1 FROM retired WHERE from_id = ?", (from_id,)).fetchone():
        return "retired"
    return None


@functools.lru_cache(maxsize=8)
def _insert_sql(columns: tuple[str, ...]) -> str:
    """The INSERT for a row of these columns (the same statement for every entry)."""
    return f"INSERT INTO queue ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)}) RETURNING id"


def insert_queue_entry(conn: Connection, entry: QueueEntry) -> int:
    """Insert a new entry (``entry.id`` must be 0); sets and returns its ID.

    Raises FromIDNotUnique when its fromid is already in the queue or the
    retired list.
    """
    if entry.id != 0:
        raise ValueError("new queue entry must have id 0")
    where = from_id_exists(conn, entry.from_id)
    if where is not None:
        raise FromIDNotUnique(entry.from_id, where)
    row = entry.to_row()
    del row["id"]
    cur = conn.execute(_insert_sql(tuple(row)), tuple(row.values()))
    entry.id = int(cur.fetchone()[0])
    return entry.id


def get_queue_entry(conn: Connection, entry_id: int) -> QueueEntry:
    row = conn.execute("SELECT * FROM queue WHERE id = ?", (entry_id,)).fetchone()
    if row is None:
        raise QueueEntryNotFound(entry_id)
    return QueueEntry.from_row(row)


def update_queue_entry(conn: Connection, entry: QueueEntry) -> None:
    """Save every column of an existing entry."""
    row = entry.to_row()
    del row["id"]
    sets = ", ".join(f"{k} = ?" for k in row)
    cur = conn.execute(f"UPDATE queue SET {sets} WHERE id = ?", (*row.values(), entry.id))
    if cur.rowcount == 0:
        raise QueueEntryNotFound(entry.id)


def retire(
    conn: Connection,
    entry_id: int,
    *,
    success: bool,
    now: datetime,
    keep_until: datetime | None,
) -> str:
    """Remove an entry from the queue, keeping a retired record if ``keep_until`` is given.

    Returns the entry's file id: remove the file after commit with
    ``store.remove_unreferenced`` (other recipients may still share it).
    The retired record keeps the queue ID and drops what mox does not keep
    (hold, msg prefix, DSN UTF-8 body, file).
    """
    entry = get_queue_entry(conn, entry_id)
    if keep_until is not None:
        cols = ", ".join(QUEUE_COLUMNS)
        t = to_db_time(now)
        conn.execute(
            f"INSERT INTO retired ({cols}, recipient_address, success, keep_until)"
            f" SELECT {cols}, ?, ?, ? FROM queue WHERE id = ?",
            (entry.recipient, int(success), to_db_time(keep_until), entry_id),
        )
        conn.execute(
            "UPDATE retired SET hold = 0, msg_prefix = ?, dsn_utf8 = ?, file_id = NULL,"
            " last_activity = ? WHERE id = ?",
            (b"", b"", t, entry_id),
        )
    conn.execute("DELETE FROM queue WHERE id = ?", (entry_id,))
    return entry.file_id


def get_retired(conn: Connection, entry_id: int) -> RetiredEntry:
    row = conn.execute(
        f"SELECT {', '.join(RETIRED_COLUMNS)} FROM retired WHERE id = ?", (entry_id,)
    ).fetchone()
    if row is None:
        raise QueueEntryNotFound(entry_id)
    return RetiredEntry.from_row(row)


def retired_by_from_id(conn: Connection, from_id: str) -> RetiredEntry | None:
    """The retired message a DSN's fromid points at."""
    row = conn.execute("SELECT * FROM retired WHERE from_id = ?", (from_id,)).fetchone()
    return None if row is None or not from_id else RetiredEntry.from_row(row)


def recent_outcomes(conn: Connection, recipient_address: str, exclude_id: int, limit: int) -> list[bool]:
    """Success of the most recent retired messages to exactly ``recipient_address``
    (any sender account), newest first, leaving out retired entry ``exclude_id``.

    For rules over a recipient's delivery history (suppression's repeated
    failures); uses the index on (recipient_address, last_activity).
    """
    rows = conn.execute(
        "SELECT success FROM retired WHERE recipient_address = ? AND id != ?"
        " ORDER BY last_activity DESC, id DESC LIMIT ?",
        (recipient_address, exclude_id, limit),
    ).fetchall()
    return [bool(r[0]) for r in rows]


def delete_expired_retired(conn: Connection, now: datetime) -> int:
    cur = conn.execute("DELETE FROM retired WHERE keep_until < ?", (to_db_time(now),))
    return cur.rowcount


def queue_entry_by_from_id(conn: Connection, from_id: str) -> QueueEntry | None:
    """The queued message a fromid (of a DSN or a reply) points at, if still queued."""
    if not from_id:
        return None
    row = conn.execute("SELECT * FROM queue WHERE from_id = ?", (from_id,)).fetchone()
    return None if row is None else QueueEntry.from_row(row)


def save_results(
    conn: Connection, where: Literal["queue", "retired"], entry: QueueEntry
) -> None:
    """Save an entry's delivery results and last activity, queued or retired.

    Incoming DSNs add a result to the message they report on, wherever it is
    by then; nothing else of the entry changes.
    """
    table = "queue" if where == "queue" else "retired"
    row = entry.to_row()
    conn.execute(
        f"UPDATE {table} SET results = ?, last_activity = ? WHERE id = ?",
        (row["results"], row["last_activity"], entry.id),
    )
