"""``queue suppress list|add|remove|lookup`` handlers, called directly; exact output."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from core.gofmt import format_go_time_seconds
from core.plugin_api import CtlRequest, CtlResult, PluginContext
from plugins.suppression.commands import (
    cmd_add,
    cmd_list,
    cmd_lookup,
    cmd_remove,
    ctl_commands,
)
from plugins.suppression.records import Suppression, insert_suppression
from plugins.suppression.service import SuppressionService

HEADER = "suppressions (account, address, manual, time added, base adddress, reason):\n"


async def run(handler: object, ctx: PluginContext, *args: str) -> CtlResult:
    return await handler(ctx, CtlRequest(list(args)))  # type: ignore[operator]


async def put(ctx: PluginContext, sup: Suppression) -> None:
    await ctx.store.write(lambda conn: insert_suppression(conn, sup))


def test_command_paths() -> None:
    assert [c.path for c in ctl_commands()] == [
        ("queue", "suppress", "list"),
        ("queue", "suppress", "add"),
        ("queue", "suppress", "remove"),
        ("queue", "suppress", "lookup"),
    ]


def test_go_time_rounding() -> None:
    assert (
        format_go_time_seconds(datetime(2026, 11, 23, 23, 59, 15, 500000, tzinfo=UTC))
        == "2026-11-23 23:59:16 +0000 UTC"
    )
    assert (
        format_go_time_seconds(datetime(2026, 11, 23, 23, 59, 15, 499999, tzinfo=UTC))
        == "2026-11-23 23:59:15 +0000 UTC"
    )
    assert (
        format_go_time_seconds(datetime(2026, 12, 31, 23, 59, 59, 900000, tzinfo=UTC))
        == "2027-01-01 00:00:00 +0000 UTC"
    )


async def test_list_empty(ctx: PluginContext) -> None:
    assert await run(cmd_list, ctx) == CtlResult(HEADER + "(none)\n", 0)
    assert await run(cmd_list, ctx, "-account", "mox") == CtlResult(HEADER + "(none)\n", 0)


async def test_list_observed_line(ctx: PluginContext) -> None:
    await put(
        ctx,
        Suppression(
            account="mox",
            base_address="userpermerror@example.org",
            original_address="userpermerror@example.org",
            created=datetime(2026, 11, 23, 23, 59, 15, 906321, tzinfo=UTC),
            reason='delivery failure from queue with smtp code 550, enhanced code "0.0"',
        ),
    )
    out = await run(cmd_list, ctx)
    assert out.exit_code == 0
    assert out.output == HEADER + (
        '"mox"\t"userpermerror@example.org"\tNo\t2026-11-23 23:59:16 +0000 UTC\t'
        '"userpermerror@example.org"\t"delivery failure from queue with smtp code 550, enhanced code \\"0.0\\""\n'
    )


async def test_list_all_accounts_by_id_or_one_account(ctx: PluginContext) -> None:
    t = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for account, addr in (
        ("other", "zz@example.org"),
        ("mox", "b@example.org"),
        ("mox", "a@example.org"),
    ):
        await put(
            ctx,
            Suppression(
                account=account,
                base_address=addr,
                original_address=addr,
                created=t,
                manual=True,
                reason="r",
            ),
        )
    line = '"{}"\t"{}"\tYes\t2026-01-02 03:04:05 +0000 UTC\t"{}"\t"r"\n'
    all_out = await run(cmd_list, ctx)
    assert all_out.output == HEADER + "".join(
        line.format(acc, a, a)
        for acc, a in (
            ("other", "zz@example.org"),
            ("mox", "b@example.org"),
            ("mox", "a@example.org"),
        )
    )
    mox_out = await run(cmd_list, ctx, "-account=mox")
    assert mox_out.output == HEADER + "".join(
        line.format("mox", a, a) for a in ("a@example.org", "b@example.org")
    )
    # An unknown account is an error naming it (mox lists nothing).
    assert await run(cmd_list, ctx, "-account", "nobody") == CtlResult(
        'looking up account: unknown account "nobody"\n', 1
    )


async def test_add_then_list_and_lookup(ctx: PluginContext) -> None:
    assert await run(cmd_add, ctx, "mox", "John.Doe+news@Example.COM") == CtlResult("", 0)
    [sup] = await ctx.service(SuppressionService).list("mox")
    assert (sup.manual, sup.reason) == (True, "added through mox cli")
    when = format_go_time_seconds(sup.created)
    out = await run(cmd_list, ctx)
    assert out.output == HEADER + (
        f'"mox"\t"John.Doe+news@example.com"\tYes\t{when}\t"johndoe@example.com"\t"added through mox cli"\n'
    )
    expected = f'present\nadded: {when}\nmanual: yes\nbase address: johndoe@example.com\nreason: "added through mox cli"\n'
    # Without -account any account matches; with it, only that one.
    assert await run(cmd_lookup, ctx, "johndoe-x@example.com") == CtlResult(expected, 0)
    assert await run(cmd_lookup, ctx, "-account", "mox", "j.o.h.n.doe@example.com") == CtlResult(
        expected, 0
    )
    assert await run(cmd_lookup, ctx, "-account", "other", "johndoe@example.com") == CtlResult(
        "not present\n", 0
    )
    assert await run(cmd_lookup, ctx, "jane@example.com") == CtlResult("not present\n", 0)


async def test_add_errors(ctx: PluginContext) -> None:
    assert await run(cmd_add, ctx, "nobody", "a@example.com") == CtlResult(
        'looking up account: unknown account "nobody"\n', 1
    )
    bad = await run(cmd_add, ctx, "mox", "user@[1.2.3.4]")
    assert bad.exit_code == 1 and bad.output.startswith("parsing address: ")
    await run(cmd_add, ctx, "mox", "a@example.com")
    dup = await run(cmd_add, ctx, "mox", "A+x@example.com")
    assert dup == CtlResult(
        'adding suppression: updating indices for inserted value: not unique: "Account+BaseAddress"\n',
        1,
    )
    # The same address for another account is that account's own entry.
    assert await run(cmd_add, ctx, "other", "a@example.com") == CtlResult("", 0)


async def test_remove(ctx: PluginContext) -> None:
    await run(cmd_add, ctx, "mox", "John.Doe@example.com")
    await run(cmd_add, ctx, "other", "John.Doe@example.com")
    assert await run(cmd_remove, ctx, "mox", "JOHNDOE+other@example.com") == CtlResult("", 0)
    assert await run(cmd_remove, ctx, "mox", "johndoe@example.com") == CtlResult(
        "removing suppression: absent\n", 1
    )
    # other's entry is untouched.
    assert [s.account for s in await ctx.service(SuppressionService).list()] == ["other"]
    bad = await run(cmd_remove, ctx, "mox", "nope")
    assert bad.exit_code == 1 and bad.output.startswith("parsing address: ")


async def test_lookup_unknown_account(ctx: PluginContext) -> None:
    assert await run(cmd_lookup, ctx, "-account", "nobody", "a@example.com") == CtlResult(
        'looking up account: unknown account "nobody"\n', 1
    )


async def test_usage_errors(ctx: PluginContext) -> None:
    r = await run(cmd_list, ctx, "extra")
    assert r.exit_code == 2 and r.output.startswith(
        "usage: moxtrio queue suppress list [-account account]\n"
    )
    r = await run(cmd_list, ctx, "-bogus", "x")
    assert r.exit_code == 2 and r.output.startswith("flag provided but not defined: -bogus\nusage:")
    r = await run(cmd_add, ctx, "mox")
    assert r == CtlResult("usage: moxtrio queue suppress add account address\n", 2)
    r = await run(cmd_remove, ctx, "mox", "a@example.com", "b@example.com")
    assert r == CtlResult("usage: moxtrio queue suppress remove account address\n", 2)
    r = await run(cmd_lookup, ctx)
    assert r.exit_code == 2 and r.output.startswith(
        "usage: moxtrio queue suppress lookup [-account account] address\n"
    )
    r = await run(cmd_lookup, ctx, "-account")
    assert r.exit_code == 2 and r.output.startswith("flag needs an argument: -account\n")
    # Nothing was changed by any of them.
    assert await ctx.service(SuppressionService).list() == []


async def test_rows_are_plain_sqlite(ctx: PluginContext) -> None:
    # The table and unique index exist as the migration declares them.
    def read(conn: sqlite3.Connection) -> list[str]:
        if ctx.store.dialect == "postgres":
            q = (
                "SELECT relname FROM pg_class WHERE oid = 'suppression_list'::regclass"
                " UNION SELECT indexname FROM pg_indexes WHERE tablename = 'suppression_list'"
                " AND indexname != 'suppression_list_pkey' ORDER BY 1"
            )
        else:
            q = "SELECT name FROM sqlite_master WHERE tbl_name = 'suppression_list' ORDER BY name"
        return [r[0] for r in conn.execute(q)]

    assert await ctx.store.read(read) == [
        "suppression_account_base", "suppression_account_category", "suppression_list",
        "suppression_until",
    ]
