"""The delivery-time check: a listed recipient is settled without SMTP.

Also through the core queue's own claim (``core.queue.prepare.claim_batch``),
to show that every recipient of a batch is checked (docs/differences.md,
item 8), not only the entry that starts the attempt.
"""

from __future__ import annotations

import random
import sqlite3
from typing import Any

from core.dispatch import HookDispatcher
from core.plugin_api import PluginContext
from core.store import Store
from core.store.queue_rows import get_queue_entry, insert_queue_entry
from plugins.suppression.base import parse_recipient
from plugins.suppression.service import SuppressionService
from tests.suppression.helpers import T0, entry, queue_entry


async def add(ctx: PluginContext, account: str, address: str) -> None:
    await ctx.service(SuppressionService).add(
        account, parse_recipient(address), manual=True, reason="test"
    )


async def precheck(store: Store, hooks: HookDispatcher, e: Any) -> Any:
    def write(conn: sqlite3.Connection) -> Any:
        return hooks.first_sync("moxtrio_delivery_precheck", conn=conn, entry=e)

    return await store.write(write)


async def test_listed_base_address_fails_permanently(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    await add(ctx, "mox", "john.doe@example.org")
    e = await queue_entry(store, "JohnDoe+news@example.org")
    out = await precheck(store, dispatcher, e)
    assert out is not None
    assert out.event == "suppressed" and out.permanent is True
    assert (out.smtp_code, out.smtp_enhanced_code) == (0, "")
    assert out.error == (
        "not delivering to recipient address JohnDoe+news@example.org:"
        " address is on suppression list, permanent"
    )


async def test_unlisted_goes_on(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    await add(ctx, "mox", "john@example.org")
    e = await queue_entry(store, "jane@example.org")
    assert await precheck(store, dispatcher, e) is None


async def test_other_accounts_list_does_not_apply(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    await add(ctx, "other", "user@example.org")
    mine = await queue_entry(store, "user@example.org", account="mox")
    theirs = await queue_entry(store, "user@example.org", account="other")
    assert await precheck(store, dispatcher, mine) is None
    assert (await precheck(store, dispatcher, theirs)).event == "suppressed"


async def test_every_recipient_of_a_batch_is_checked(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    from core.queue.prepare import claim_batch

    await add(ctx, "mox", "b@example.org")
    await add(ctx, "mox", "d@example.org")

    def setup(conn: sqlite3.Connection) -> list[int]:
        ids = [
            insert_queue_entry(conn, entry(r))
            for r in ("a@example.org", "b@example.org", "c@example.org", "d@example.org")
        ]
        conn.execute(
            f"UPDATE queue SET base_id = ? WHERE id IN ({','.join('?' * len(ids))})", (ids[0], *ids)
        )
        return ids

    ids = await store.write(setup)

    def claim(conn: sqlite3.Connection) -> Any:
        return claim_batch(conn, ctx, ids[0], ids, T0, random.Random(1))

    claimed = await store.write(claim)
    assert claimed is not None
    # The listed ones (neither starts the attempt) are settled without SMTP...
    settled = {o.entry_id: o for o in claimed.settled}
    assert sorted(settled) == [ids[1], ids[3]]
    for i, rcpt in ((ids[1], "b@example.org"), (ids[3], "d@example.org")):
        o = settled[i]
        assert (o.ok, o.permanent, o.event, o.code) == (False, True, "suppressed", 0)
        assert (
            o.error
            == f"not delivering to recipient address {rcpt}: address is on suppression list, permanent"
        )
    # ...and only the others go into the SMTP transaction.
    assert [e.id for e in claimed.batch] == [ids[0], ids[2]]
    # Every started entry got its attempt counted (Attempts = 1, LastAttempt set).
    rows = await store.read(lambda c: [get_queue_entry(c, i) for i in ids])
    assert [(r.attempts, r.last_attempt) for r in rows] == [(1, T0)] * 4


async def test_lead_entry_listed_others_still_delivered(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    from core.queue.prepare import claim_batch

    await add(ctx, "mox", "a@example.org")

    def setup(conn: sqlite3.Connection) -> list[int]:
        ids = [insert_queue_entry(conn, entry(r)) for r in ("a@example.org", "b@example.org")]
        conn.execute("UPDATE queue SET base_id = ? WHERE id IN (?, ?)", (ids[0], *ids))
        return ids

    ids = await store.write(setup)
    claimed = await store.write(
        lambda conn: claim_batch(conn, ctx, ids[0], ids, T0, random.Random(1))
    )
    assert claimed is not None
    assert [o.entry_id for o in claimed.settled] == [ids[0]]
    assert [e.id for e in claimed.batch] == [ids[1]]
