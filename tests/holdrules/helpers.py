"""Queue entries for the hold-rule tests, added the way the core queue adds them:
the ``moxtrio_queue_adding`` hook, then the insert, in one store transaction."""

from __future__ import annotations

import sqlite3

from core.dispatch import HookDispatcher
from core.message.address import parse_domain
from core.store import Store
from core.store.models import QueueEntry, utcnow
from core.store.queue_rows import insert_queue_entry


def entry(
    sender: str = "mox@localhost", rcpt: str = "rcpt@example.org", account: str = "mox"
) -> QueueEntry:
    """A queue entry as the core builds it (ASCII and Unicode domain forms)."""
    now = utcnow()
    slp, _, sdom = sender.rpartition("@")
    rlp, _, rdom = rcpt.rpartition("@")
    sd, rd = parse_domain(sdom), parse_domain(rdom)
    return QueueEntry(
        queued=now,
        next_attempt=now,
        sender_account=account,
        sender_localpart=slp,
        sender_domain=sd.ascii,
        sender_domain_str=sd.unicode,
        recipient_localpart=rlp,
        recipient_domain=rd.ascii,
        recipient_domain_str=rd.unicode,
    )


async def add_through_hook(
    store: Store, dispatcher: HookDispatcher, entries: list[QueueEntry]
) -> list[int]:
    """Run the in-transaction hook and insert the entries; returns their IDs."""

    def write(conn: sqlite3.Connection) -> list[int]:
        dispatcher.call_sync("moxtrio_queue_adding", conn=conn, entries=entries)
        return [insert_queue_entry(conn, e) for e in entries]

    return await store.write(write)


async def held(store: Store) -> dict[int, bool]:
    """Hold flag per queue ID, as committed."""

    def read(conn: sqlite3.Connection) -> dict[int, bool]:
        return {r[0]: bool(r[1]) for r in conn.execute("SELECT id, hold FROM queue ORDER BY id")}

    return await store.read(read)
