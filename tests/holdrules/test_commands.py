"""``queue holdrules list|add|remove``: exact output, flags, and the effect on the queue."""

from __future__ import annotations

from core.dispatch import HookDispatcher
from core.goflags import go_quote
from core.plugin_api import CtlRequest, CtlResult, PluginContext
from core.store import Store
from plugins.holdrules.commands import cmd_add, cmd_list, cmd_remove
from plugins.holdrules.service import HoldRuleService

from .helpers import add_through_hook, entry, held


async def run(ctx: PluginContext, cmd: str, *args: str) -> CtlResult:
    handler = {"list": cmd_list, "add": cmd_add, "remove": cmd_remove}[cmd]
    return await handler(ctx, CtlRequest(list(args)))


async def test_commands_are_registered_under_mox_names(
    ctx: PluginContext, dispatcher: HookDispatcher
) -> None:
    cmds = dispatcher.setup("moxtrio_ctl_commands", ctx=ctx)
    assert sorted(c.path for c in cmds) == [
        ("queue", "holdrules", "add"),
        ("queue", "holdrules", "list"),
        ("queue", "holdrules", "remove"),
    ]


async def test_list_empty(ctx: PluginContext) -> None:
    r = await run(ctx, "list")
    assert (r.output, r.exit_code) == ("hold rules:\n(none)\n", 0)


async def test_add_list_remove_exact_output(ctx: PluginContext) -> None:
    r = await run(ctx, "add", "-senderdom", "localhost", "-recipientdom", "nomatch.example")
    assert (r.output, r.exit_code) == ("", 0)
    assert (await run(ctx, "add")).exit_code == 0
    assert (await run(ctx, "add", "-account", "mox")).exit_code == 0
    r = await run(ctx, "list")
    # mox's output, observed (including mox's "sender domain" label for the recipient domain)
    assert r.output == (
        "hold rules:\n"
        'id 1: sender domain "localhost", sender domain "nomatch.example"\n'
        "id 2: all messages\n"
        'id 3: account "mox"\n'
    )
    r = await run(ctx, "remove", "2")
    assert (r.output, r.exit_code) == ("", 0)
    r = await run(ctx, "list")
    assert r.output == (
        "hold rules:\n"
        'id 1: sender domain "localhost", sender domain "nomatch.example"\n'
        'id 3: account "mox"\n'
    )
    # IDs are not reused after a removal.
    await run(ctx, "add", "--account=x", "-senderdom=Example.COM")
    r = await run(ctx, "list")
    assert r.output.endswith('id 4: account "x", sender domain "example.com"\n')


async def test_all_three_conditions_and_unicode_output(ctx: PluginContext) -> None:
    r = await run(
        ctx,
        "add",
        "-account",
        'a"b',
        "-senderdom",
        "XN--BCHER-KVA.example",
        "-recipientdom",
        "Ünicode.example",
    )
    assert r.exit_code == 0, r.output
    r = await run(ctx, "list")
    assert r.output == (
        "hold rules:\n"
        'id 1: account "a\\"b", sender domain "bücher.example", sender domain "ünicode.example"\n'
    )


async def test_bad_input(ctx: PluginContext) -> None:
    r = await run(ctx, "add", "-senderdom", "example.com.")
    assert r.exit_code == 1 and r.output.startswith("parsing sender domain: "), r.output
    r = await run(ctx, "add", "-recipientdom", "10.0.0.1")
    assert r.exit_code == 1 and r.output.startswith("parsing recipient domain: "), r.output
    r = await run(ctx, "add", "-bogus", "x")
    assert r.exit_code == 2
    assert r.output.startswith(
        "flag provided but not defined: -bogus\nusage: moxtrio queue holdrules add"
    )
    r = await run(ctx, "add", "-account")
    assert r.exit_code == 2 and r.output.startswith("flag needs an argument: -account\n")
    r = await run(ctx, "add", "extra")
    assert r.exit_code == 2 and r.output.startswith("usage: ")
    assert (await run(ctx, "list", "x")).exit_code == 2
    # nothing was stored by any of these
    assert (await run(ctx, "list")).output == "hold rules:\n(none)\n"

    r = await run(ctx, "remove")
    assert (r.output, r.exit_code) == ("usage: moxtrio queue holdrules remove ruleid\n", 2)
    r = await run(ctx, "remove", "abc")
    assert r.exit_code == 1
    assert r.output == 'parsing id: strconv.ParseInt: parsing "abc": invalid syntax\n'
    r = await run(ctx, "remove", "9")
    assert (r.output, r.exit_code) == ("remove hold rule: absent\n", 1)


async def test_add_holds_existing_entries_with_and_filter(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher,
) -> None:
    ids = await add_through_hook(
        store,
        dispatcher,
        [
            entry(rcpt="a@example.org"),
            entry(rcpt="b@other.example"),
            entry(sender="x@elsewhere.example", rcpt="c@example.org", account="other"),
            entry(rcpt="d@Example.ORG"),
        ],
    )
    assert not any((await held(store)).values())
    r = await run(ctx, "add", "-senderdom", "localhost", "-recipientdom", "example.org")
    assert r.exit_code == 0, r.output
    assert await held(store) == {ids[0]: True, ids[1]: False, ids[2]: False, ids[3]: True}


async def test_add_spec_worked_example_holds_no_existing(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher,
) -> None:
    ids = await add_through_hook(store, dispatcher, [entry(rcpt="x@example.org")])
    await run(ctx, "add", "-senderdom", "localhost", "-recipientdom", "nomatch.example")
    assert await held(store) == {ids[0]: False}


async def test_add_account_rule_uses_account_filter(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher,
) -> None:
    ids = await add_through_hook(
        store, dispatcher, [entry(account="mox"), entry(account="other", sender="o@localhost")]
    )
    await run(ctx, "add", "-account", "mox")
    assert await held(store) == {ids[0]: True, ids[1]: False}


async def test_add_account_and_domain_rule(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher,
) -> None:
    ids = await add_through_hook(
        store,
        dispatcher,
        [
            entry(account="mox", rcpt="a@bücher.example"),
            entry(account="other", sender="o@localhost", rcpt="b@bücher.example"),
            entry(account="mox", rcpt="c@example.org"),
        ],
    )
    await run(ctx, "add", "-account", "mox", "-recipientdom", "Bücher.example")
    assert await held(store) == {ids[0]: True, ids[1]: False, ids[2]: False}


async def test_add_empty_rule_holds_everything(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher,
) -> None:
    ids = await add_through_hook(
        store, dispatcher, [entry(), entry(account="z", sender="z@z.example", rcpt="q@q.example")]
    )
    await run(ctx, "add")
    assert await held(store) == {ids[0]: True, ids[1]: True}


async def test_remove_leaves_entries_held(
    ctx: PluginContext, store: Store, dispatcher: HookDispatcher
) -> None:
    await run(ctx, "add", "-recipientdom", "example.org")
    before = await add_through_hook(store, dispatcher, [entry(rcpt="new@example.org")])
    assert (await run(ctx, "remove", "1")).exit_code == 0
    assert await held(store) == {before[0]: True}
    after = await add_through_hook(store, dispatcher, [entry(rcpt="later@example.org")])
    assert await held(store) == {before[0]: True, after[0]: False}


async def test_service_is_offered_and_lists_rules(ctx: PluginContext) -> None:
    svc = ctx.service(HoldRuleService)
    assert isinstance(svc, HoldRuleService)
    rule = await svc.add(account="mox", recipient_domain="bücher.example")
    assert rule.id == 1
    listed = await svc.list()
    assert [r.to_json() for r in listed] == [rule.to_json()]
    assert listed[0].created is not None


def test_go_quote() -> None:
    assert go_quote("plain") == '"plain"'
    assert go_quote('a"b\\c') == '"a\\"b\\\\c"'
    assert go_quote("tab\there\n") == '"tab\\there\\n"'
    assert go_quote("\x01\x7f") == '"\\x01\\x7f"'
    assert go_quote("bücher") == '"bücher"'
    assert go_quote("\u200b") == '"\\u200b"'
