"""Admin filters, sorting and the operations on them.

Filters select in SQL where they can (IDs, account, hold, transport, time
expressions) and in Python for the Unicode substring matches on sender and
recipient (``From``/``To``, OR-ed when both are set). ``Max`` limits the
matches. The operations run inside the caller's transaction and return
what they changed, so the service can kick the scheduler and clean up after
the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from core.sqlfilter import Sort, Where
from core.store.models import QueueEntry, RetiredEntry
from core.store.sql import Connection, Row

E = TypeVar("E", bound=QueueEntry)


@dataclass
class QueueFilter:
    """mox's queue filter (JSON field names as mox); an empty filter matches everything."""

    Max: int = 0
    IDs: list[int] | None = None
    Account: str = ""
    From: str = ""
    To: str = ""
    Hold: bool | None = None
    Submitted: str = ""
    NextAttempt: str = ""
    Transport: str | None = None


@dataclass
class QueueSort(Sort):
    """mox's queue sort: ``Field`` "" / ``NextAttempt`` / ``Queued``; descending unless Asc."""


@dataclass
class RetiredFilter:
    Max: int = 0
    IDs: list[int] | None = None
    Account: str = ""
    From: str = ""
    To: str = ""
    Submitted: str = ""
    LastActivity: str = ""
    Transport: str | None = None
    Success: bool | None = None


@dataclass
class RetiredSort(Sort):
    """mox's sort JSON for this listing."""


def _common(q: Where, f: QueueFilter | RetiredFilter, now: datetime) -> None:
    if f.IDs:
        q.add(f"id IN ({', '.join('?' for _ in f.IDs)})", *[int(i) for i in f.IDs])
    if f.Account:
        q.add("sender_account = ?", f.Account)
    if f.Transport is not None:
        q.add("transport = ?", f.Transport)
    q.time("queued", f.Submitted, now)


def _addr_match(f: QueueFilter | RetiredFilter, e: QueueEntry) -> bool:
    if not f.From and not f.To:
        return True
    if f.From and f.From in e.sender_address:
        return True
    return bool(f.To and f.To in e.recipient)


_QUEUE_SORT = {"": "next_attempt", "NextAttempt": "next_attempt", "Queued": "queued"}
_RETIRED_SORT = {"": "last_activity", "LastActivity": "last_activity", "Queued": "queued"}


def select_queue(
    conn: Connection, f: QueueFilter, now: datetime, sort: QueueSort | None = None
) -> list[QueueEntry]:
    """Queue entries matching the filter (sorted when ``sort`` is given, else by ID)."""
    q = Where()
    _common(q, f, now)
    if f.Hold is not None:
        q.add("hold = ?", int(f.Hold))
    q.time("next_attempt", f.NextAttempt, now)
    order = q.order(_QUEUE_SORT, sort)
    return _collect(conn, "queue", QueueEntry.from_row, q, order, f)


def _collect(
    conn: Connection, table: str, from_row: Callable[[Row], E], q: Where, order: str,
    f: QueueFilter | RetiredFilter,
) -> list[E]:
    """Rows matching the SQL conditions and the From/To substrings, up to ``f.Max``."""
    out: list[E] = []
    for row in conn.execute(f"SELECT * FROM {table}{q.sql()}{order}", q.args):
        e = from_row(row)
        if not _addr_match(f, e):
            continue
        out.append(e)
        if f.Max and len(out) >= f.Max:
            break
    return out


def select_retired(
    conn: Connection, f: RetiredFilter, now: datetime, sort: RetiredSort | None = None
) -> list[RetiredEntry]:
    q = Where()
    _common(q, f, now)
    q.time("last_activity", f.LastActivity, now)
    if f.Success is not None:
        q.add("success = ?", int(f.Success))
    order = q.order(_RETIRED_SORT, sort)
    return _collect(conn, "retired", RetiredEntry.from_row, q, order, f)


def update_matching(
    conn: Connection, f: QueueFilter, now: datetime, sets: str, args: tuple[Any, ...]
) -> int:
    """Apply ``UPDATE queue SET <sets>`` to the matching entries; returns the count."""
    ids = [e.id for e in select_queue(conn, f, now)]
    for i in range(0, len(ids), 500):
        chunk = ids[i : i + 500]
        conn.execute(
            f"UPDATE queue SET {sets} WHERE id IN ({', '.join('?' for _ in chunk)})",
            (*args, *chunk),
        )
    return len(ids)
