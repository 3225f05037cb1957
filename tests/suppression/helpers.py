"""Queue and retired rows for the suppression tests, written with the core's
own row functions (core.store.queue_rows) so they look exactly like the
queue's."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from core.message.address import parse_address
from core.store import Store
from core.store.models import QueueEntry, RetiredEntry
from core.store.queue_rows import get_queue_entry, get_retired, insert_queue_entry, retire

T0 = datetime(2026, 11, 24, 0, 0, 0, tzinfo=UTC)


def entry(rcpt: str, account: str = "mox", *, base_id: int = 0, now: datetime = T0) -> QueueEntry:
    """A queue entry as the core builds it (recipient domain in both forms)."""
    a = parse_address(rcpt)
    return QueueEntry(
        queued=now,
        next_attempt=now,
        base_id=base_id,
        sender_account=account,
        sender_localpart=account,
        sender_domain="mail.example",
        sender_domain_str="mail.example",
        recipient_localpart=a.localpart,
        recipient_domain=a.domain.ascii,
        recipient_domain_str=a.domain.unicode,
        message_id="<m@mail.example>",
        subject="test",
    )


async def queue_entry(store: Store, rcpt: str, account: str = "mox") -> QueueEntry:
    """Insert a queue entry; returns it as stored."""

    def write(conn: sqlite3.Connection) -> QueueEntry:
        e = entry(rcpt, account)
        insert_queue_entry(conn, e)
        return get_queue_entry(conn, e.id)

    return await store.write(write)


async def retired_entry(
    store: Store, rcpt: str, *, success: bool, at: datetime, account: str = "mox"
) -> RetiredEntry:
    """A message to ``rcpt`` retired at ``at`` (LastActivity) with ``success``."""

    def write(conn: sqlite3.Connection) -> RetiredEntry:
        e = entry(rcpt, account, now=at)
        insert_queue_entry(conn, e)
        retire(conn, e.id, success=success, now=at, keep_until=at + timedelta(days=3))
        return get_retired(conn, e.id)

    return await store.write(write)


def minutes(n: float) -> datetime:
    return T0 + timedelta(minutes=n)
