"""The webapi's operations through the core's ``SuppressionProvider``.

Called the way the webapi calls them: the provider found in the server's
context, with the authenticated account. ``op`` shapes the answers as the
webapi's JSON bodies; a typed error reaches the caller as a
SuppressionError (a ServiceError) carrying the webapi error code.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from core.plugin_api import PluginContext
from core.services import SuppressionProvider
from core.store.models import utcnow
from plugins.suppression import SuppressionError


async def op(ctx: PluginContext, account: str, name: str, **args: Any) -> Any:
    p = ctx.service(SuppressionProvider)  # type: ignore[type-abstract]
    assert p is not None
    address = args.get("EmailAddress", "")
    if name == "list":
        return {"Suppressions": [s.to_json() for s in await p.list_suppressions(account)]}  # type: ignore[attr-defined]
    if name == "add":
        await p.add_suppression(
            account, address, manual=args.get("Manual", False), reason=args.get("Reason", "")
        )
        return {}
    if name == "remove":
        await p.remove_suppression(account, address)
        return {}
    assert name == "present"
    return {"Present": await p.is_suppressed(account, address)}


async def op_error(ctx: PluginContext, account: str, name: str, **args: Any) -> SuppressionError:
    with pytest.raises(SuppressionError) as info:
        await op(ctx, account, name, **args)
    return info.value


async def test_empty_list(ctx: PluginContext) -> None:
    result = await op(ctx, "mox", "list")
    assert result == {"Suppressions": []}
    # The webapi encodes it compactly: mox's observed body.
    assert json.dumps(result, separators=(",", ":")) == '{"Suppressions":[]}'


async def test_add_list_present_remove(ctx: PluginContext) -> None:
    before = utcnow()
    assert (
        await op(
            ctx,
            "mox",
            "add",
            EmailAddress="John.Doe+news@Example.COM",
            Manual=True,
            Reason="bounced",
        )
        == {}
    )
    [s] = (await op(ctx, "mox", "list"))["Suppressions"]
    assert list(s) == [
        "ID",
        "Created",
        "Account",
        "BaseAddress",
        "OriginalAddress",
        "Manual",
        "Reason",
    ]
    assert s["ID"] > 0
    assert s["Account"] == "mox"
    assert s["BaseAddress"] == "johndoe@example.com"
    assert s["OriginalAddress"] == "John.Doe+news@example.com"
    assert (s["Manual"], s["Reason"]) == (True, "bounced")
    assert s["Created"].endswith("Z") and s["Created"][:19] >= (
        before - timedelta(seconds=1)
    ).strftime("%Y-%m-%dT%H:%M:%S")
    # Any variant is present...
    for variant in (
        "johndoe@example.com",
        "j.o.h.n.doe-x@example.com",
        "JOHNDOE+other@EXAMPLE.com",
    ):
        assert await op(ctx, "mox", "present", EmailAddress=variant) == {"Present": True}
    assert await op(ctx, "mox", "present", EmailAddress="jane@example.com") == {"Present": False}
    # ...and any variant removes it (observed).
    assert await op(ctx, "mox", "remove", EmailAddress="JOHNDOE+other@example.com") == {}
    assert await op(ctx, "mox", "list") == {"Suppressions": []}
    assert await op(ctx, "mox", "present", EmailAddress="johndoe@example.com") == {"Present": False}


async def test_manual_defaults_to_false(ctx: PluginContext) -> None:
    await op(ctx, "mox", "add", EmailAddress="a@example.com")
    [s] = (await op(ctx, "mox", "list"))["Suppressions"]
    assert (s["Manual"], s["Reason"]) == (False, "")


async def test_list_ordered_by_base_address(ctx: PluginContext) -> None:
    for a in ("zed@example.com", "Bob@example.com", "amy@example.com"):
        await op(ctx, "mox", "add", EmailAddress=a)
    bases = [s["BaseAddress"] for s in (await op(ctx, "mox", "list"))["Suppressions"]]
    assert bases == ["amy@example.com", "bob@example.com", "zed@example.com"]


async def test_duplicate_add_is_error(ctx: PluginContext) -> None:
    await op(ctx, "mox", "add", EmailAddress="John.Doe@example.com")
    err = await op_error(ctx, "mox", "add", EmailAddress="johndoe-2@example.com")
    assert err.code == "error"
    assert err.message == 'updating indices for inserted value: not unique: "Account+BaseAddress"'
    assert len((await op(ctx, "mox", "list"))["Suppressions"]) == 1


async def test_remove_absent_is_error(ctx: PluginContext) -> None:
    err = await op_error(ctx, "mox", "remove", EmailAddress="nobody@example.com")
    assert (err.code, err.message) == ("error", "absent")


@pytest.mark.parametrize("name", ["add", "remove", "present"])
@pytest.mark.parametrize("bad", ["user@[1.2.3.4]", "not an address", ""])
async def test_bad_address(ctx: PluginContext, name: str, bad: str) -> None:
    err = await op_error(ctx, "mox", name, EmailAddress=bad)
    assert err.code == "badAddress"
    assert err.message.startswith(f'parsing address "{bad}": ')
    assert await op(ctx, "mox", "list") == {"Suppressions": []}


async def test_isolation_between_accounts(ctx: PluginContext) -> None:
    await op(ctx, "mox", "add", EmailAddress="shared@example.com", Reason="mox's")
    await op(ctx, "other", "add", EmailAddress="only-other@example.com")
    # Each account sees only its own entries.
    assert [s["BaseAddress"] for s in (await op(ctx, "mox", "list"))["Suppressions"]] == [
        "shared@example.com"
    ]
    assert [s["BaseAddress"] for s in (await op(ctx, "other", "list"))["Suppressions"]] == [
        "only@example.com"
    ]
    assert await op(ctx, "other", "present", EmailAddress="shared@example.com") == {
        "Present": False
    }
    # other cannot remove mox's entry; adding the same address is other's own entry.
    err = await op_error(ctx, "other", "remove", EmailAddress="shared@example.com")
    assert err.message == "absent"
    await op(ctx, "other", "add", EmailAddress="shared@example.com")
    await op(ctx, "other", "remove", EmailAddress="shared@example.com")
    [s] = (await op(ctx, "mox", "list"))["Suppressions"]
    assert (s["Account"], s["Reason"]) == ("mox", "mox's")


async def test_no_account_means_no_access(ctx: PluginContext) -> None:
    await op(ctx, "mox", "add", EmailAddress="a@example.com")
    err = await op_error(ctx, "", "list")
    assert err.code == "error"
