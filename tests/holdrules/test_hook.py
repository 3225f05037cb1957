"""Hold on add: the in-transaction hook marks new entries held, committed with them."""

from __future__ import annotations

import sqlite3

from core.dispatch import HookDispatcher
from core.plugin_api import PluginContext
from core.store import Store
from core.store.queue_rows import get_queue_entry
from plugins.holdrules.service import HoldRuleService

from .helpers import add_through_hook, entry, held


async def test_no_rules_nothing_held(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    ids = await add_through_hook(store, dispatcher, [entry(), entry(rcpt="b@other.example")])
    assert await held(store) == {ids[0]: False, ids[1]: False}


async def test_new_entries_held_by_and_rule(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    svc = ctx.service(HoldRuleService)
    await svc.add(sender_domain="localhost", recipient_domain="example.org")
    # One message with recipients at three domains: only the one matching
    # both conditions is held.
    entries = [
        entry(rcpt="a@example.org"),
        entry(rcpt="b@other.example"),
        entry(sender="x@elsewhere.example", rcpt="c@example.org"),
    ]
    ids = await add_through_hook(store, dispatcher, entries)
    assert await held(store) == {ids[0]: True, ids[1]: False, ids[2]: False}
    # The flag is on the stored row, not only on the object.
    row = await store.read(lambda conn: get_queue_entry(conn, ids[0]))
    assert row.hold is True


async def test_spec_worked_example_uses_and_for_new_messages(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    # mox holds someone@other.example here (OR); moxtrio does not (docs/differences.md, item 1).
    await ctx.service(HoldRuleService).add(
        sender_domain="localhost", recipient_domain="nomatch.example"
    )
    ids = await add_through_hook(store, dispatcher, [entry(rcpt="someone@other.example")])
    assert await held(store) == {ids[0]: False}
    ids2 = await add_through_hook(store, dispatcher, [entry(rcpt="someone@nomatch.example")])
    assert (await held(store))[ids2[0]] is True


async def test_empty_rule_holds_every_new_entry(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    await ctx.service(HoldRuleService).add()
    ids = await add_through_hook(
        store, dispatcher, [entry(), entry(sender="z@zz.example", rcpt="q@q.example", account="zz")]
    )
    assert await held(store) == {ids[0]: True, ids[1]: True}


async def test_account_rule_and_several_rules_or(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    svc = ctx.service(HoldRuleService)
    await svc.add(account="alice")
    await svc.add(recipient_domain="b.example")
    ids = await add_through_hook(
        store,
        dispatcher,
        [
            entry(account="alice", rcpt="x@a.example"),
            entry(account="bob", rcpt="x@b.example"),
            entry(account="bob", rcpt="x@a.example"),
        ],
    )
    assert await held(store) == {ids[0]: True, ids[1]: True, ids[2]: False}


async def test_unicode_rule_holds_idn_entry(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    await ctx.service(HoldRuleService).add(recipient_domain="xn--bcher-kva.example")
    ids = await add_through_hook(
        store, dispatcher, [entry(rcpt="leser@bücher.example"), entry(rcpt="x@bucher.example")]
    )
    assert await held(store) == {ids[0]: True, ids[1]: False}


async def test_removed_rule_no_longer_holds_new_entries(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    svc = ctx.service(HoldRuleService)
    rule = await svc.add(account="mox")
    await svc.remove(rule.id)
    ids = await add_through_hook(store, dispatcher, [entry()])
    assert await held(store) == {ids[0]: False}


async def test_hook_runs_in_the_adding_transaction(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    """If the add fails after the hook, neither the entry nor its hold exists."""
    await ctx.service(HoldRuleService).add()
    e = entry()

    def write(conn: sqlite3.Connection) -> None:
        dispatcher.call_sync("moxtrio_queue_adding", conn=conn, entries=[e])
        assert e.hold is True
        from core.store.queue_rows import insert_queue_entry

        insert_queue_entry(conn, e)
        raise RuntimeError("core failed later in the same transaction")

    try:
        await store.write(write)
    except RuntimeError:
        pass
    assert await held(store) == {}
