"""The account API: mox's ``webaccount`` functions for suppressions, webhooks and retired periods.

Every function acts on the logged-in account only (the session names it);
no parameter selects another account. Settings changes go to domains.conf
through :func:`core.config.save.save_account` (atomic, reloaded without a
restart). Suppression lists are reached through the core's
``SuppressionProvider``, as the webapi does.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import trio

from core.config import sconf
from core.config.models import Account, IncomingWebhook, OutgoingWebhook
from core.config.save import SaveError, save_account
from core.gofmt import format_json_time
from core.message.address import AddressError, parse_address
from core.sherpa import Function, SherpaError, user_error
from core.store.sql import Connection
from core.version import VERSION
from core.webui.iface import Call
from moxtrio import ServiceError, SuppressionEntry, SuppressionProvider
from plugins.webaccount.auth_state import AccountWebAuth

T = TypeVar("T")

#: mox reads at most this much of a webhook test call's response.
RESPONSE_MAX = 512
TEST_TIMEOUT = 30.0
USER_AGENT = f"mox/moxtrio-{VERSION} (webhook)"


def go_json(value: Any) -> Any:
    """A config value as Go's encoding/json writes mox's config structs."""
    if isinstance(value, datetime.timedelta):
        return sconf.duration_ns(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: go_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): go_json(v) for k, v in value.items()} if value else None
    if isinstance(value, list | tuple):
        return [go_json(v) for v in value] if value else None
    return value


def _auth(call: Call) -> Any:
    return call.ctx.require(AccountWebAuth)


async def login_prep(call: Call) -> str:
    return _auth(call).login_prep(call.req)  # type: ignore[no-any-return]


async def login(call: Call, login_token: str, username: str, password: str) -> str:
    return await _auth(call).login(call.req, login_token, username, password)  # type: ignore[no-any-return]


async def logout(call: Call) -> None:
    assert call.session is not None
    await _auth(call).logout(call.req, call.session)


# -- account and suppressions ------------------------------------------------------------


async def _suppression(call: Call, op: str, run: Callable[[SuppressionProvider], Awaitable[T]]) -> T:
    provider = call.ctx.service(SuppressionProvider)  # type: ignore[type-abstract]
    if provider is None:
        raise SherpaError("server:error", "suppression lists are not available: no plugin offers them")
    try:
        return await run(provider)
    except ServiceError as exc:
        raise user_error(f"{op} suppression: {exc}") from None


def _entry_json(e: SuppressionEntry) -> dict[str, Any]:
    """mox's Suppression JSON (field order as mox)."""
    return {
        "ID": e.id, "Created": format_json_time(e.created), "Account": e.account,
        "BaseAddress": e.base_address, "OriginalAddress": e.original_address,
        "Manual": e.manual, "Reason": e.reason,
    }


async def _suppressions(call: Call) -> list[dict[str, Any]]:
    entries = await _suppression(call, "list", lambda p: p.list_suppressions(call.account))
    return [_entry_json(e) for e in entries]


def _check_address(address: str) -> None:
    try:
        parse_address(address)
    except AddressError as exc:
        raise user_error(f"parsing address: {exc}") from None


async def account(call: Call) -> list[Any]:
    acc = call.ctx.config.account(call.account)
    if acc is None:
        raise SherpaError("server:error", "account not found in configuration")
    name = call.account

    def used(conn: Connection) -> int:
        row = conn.execute(
            "SELECT COALESCE(SUM(size), 0) FROM messages WHERE account = ? AND expunged = 0", (name,)
        ).fetchone()
        return int(row[0])

    storage_used = await call.ctx.store.read(used)
    return [go_json(acc), storage_used, acc.QuotaMessageSize, await _suppressions(call)]


async def suppression_list(call: Call) -> list[dict[str, Any]]:
    return await _suppressions(call)


async def suppression_add(call: Call, address: str, manual: bool, reason: str) -> dict[str, Any]:
    _check_address(address)
    await _suppression(
        call, "add", lambda p: p.add_suppression(call.account, address, manual=manual, reason=reason)
    )
    entries = [s for s in await _suppressions(call) if str(s.get("OriginalAddress", "")).lower() == address.lower()]
    if not entries:
        entries = await _suppressions(call)
    return max(entries, key=lambda s: int(s.get("ID", 0)))


async def suppression_remove(call: Call, address: str) -> None:
    _check_address(address)
    await _suppression(call, "remove", lambda p: p.remove_suppression(call.account, address))


# -- settings in domains.conf ----------------------------------------------------------------


async def _save(call: Call, what: str, change: Any) -> None:
    try:
        await trio.to_thread.run_sync(save_account, call.ctx.config, call.account, change)
    except SaveError as exc:
        raise user_error(f"saving account {what}: {exc}") from None


def _valid_url(url: str) -> None:
    import httpx  # here: the account pages' only users of it, rarely called

    try:
        u = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise user_error(f"parsing url: {exc}") from None
    if u.scheme not in ("http", "https"):
        raise user_error("parsing url: scheme must be http or https")


async def outgoing_webhook_save(call: Call, url: str, authorization: str, events: list[str]) -> None:
    if url:
        _valid_url(url)
    unknown = [e for e in events if e not in OutgoingWebhook.EVENTS]
    if unknown:
        raise user_error(f"saving account outgoing webhook: unknown event {unknown[0]!r}")

    def change(acc: Account) -> None:
        acc.OutgoingWebhook = OutgoingWebhook(URL=url, Authorization=authorization, Events=list(events)) if url else None

    await _save(call, "outgoing webhook", change)


async def incoming_webhook_save(call: Call, url: str, authorization: str) -> None:
    if url:
        _valid_url(url)

    def change(acc: Account) -> None:
        acc.IncomingWebhook = IncomingWebhook(URL=url, Authorization=authorization) if url else None

    await _save(call, "incoming webhook", change)


async def fromid_login_addresses_save(call: Call, addresses: list[str]) -> None:
    for a in addresses:
        _check_address(a)

    def change(acc: Account) -> None:
        acc.FromIDLoginAddresses = list(addresses)

    await _save(call, "fromid login addresses", change)


async def keep_retired_periods_save(call: Call, message_ns: int, webhook_ns: int) -> None:
    if message_ns < 0 or webhook_ns < 0:
        raise user_error("saving account keep retired periods: periods must not be negative")

    def change(acc: Account) -> None:
        acc.KeepRetiredMessagePeriod = sconf.Duration(message_ns)
        acc.KeepRetiredWebhookPeriod = sconf.Duration(webhook_ns)

    await _save(call, "keep retired periods", change)


# -- webhook test calls ------------------------------------------------------------------------


async def hook_post(url: str, authorization: str, payload: str) -> list[Any]:
    """One POST as mox's ``queue.HookPost`` (hook ID 1, attempt 1): [code, response, error]."""
    headers = {
        "User-Agent": USER_AGENT,
        "Content-Type": "application/json; charset=utf-8",
        "X-Mox-Webhook-ID": "1",
        "X-Mox-Webhook-Attempt": "1",
    }
    if authorization:
        headers["Authorization"] = authorization
    import httpx

    try:
        async with httpx.AsyncClient(timeout=TEST_TIMEOUT, follow_redirects=False) as client:
            async with client.stream("POST", url, content=payload.encode("utf-8"), headers=headers) as resp:
                body = b""
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) >= RESPONSE_MAX:
                        break
    except httpx.HTTPError as exc:
        return [0, "", f"http transact: {exc or type(exc).__name__}"]
    err = ""
    if resp.status_code != 200:
        err = f'http status "{resp.status_code} {resp.reason_phrase}", expected 200 ok'
    return [resp.status_code, body[:RESPONSE_MAX].decode("utf-8", "replace"), err]


def _encode(data: Any) -> str:
    # Go's json.Encoder with SetIndent("", "\t") and no HTML escaping.
    return json.dumps(data, indent="\t", ensure_ascii=False) + "\n"


async def outgoing_webhook_test(call: Call, url: str, authorization: str, data: Any) -> list[Any]:
    _valid_url(url)
    return await hook_post(url, authorization, _encode(data))


async def incoming_webhook_test(call: Call, url: str, authorization: str, data: Any) -> list[Any]:
    _valid_url(url)
    return await hook_post(url, authorization, _encode(data))


FUNCTIONS: dict[str, Function] = {
    "LoginPrep": Function(login_prep, ()),
    "Login": Function(login, (str, str, str)),
    "Logout": Function(logout, ()),
    "Account": Function(account, ()),
    "SuppressionList": Function(suppression_list, ()),
    "SuppressionAdd": Function(suppression_add, (str, bool, str)),
    "SuppressionRemove": Function(suppression_remove, (str,)),
    "OutgoingWebhookSave": Function(outgoing_webhook_save, (str, str, list[str])),
    "OutgoingWebhookTest": Function(outgoing_webhook_test, (str, str, Any)),
    "IncomingWebhookSave": Function(incoming_webhook_save, (str, str)),
    "IncomingWebhookTest": Function(incoming_webhook_test, (str, str, Any)),
    "FromIDLoginAddressesSave": Function(fromid_login_addresses_save, (list[str],)),
    "KeepRetiredPeriodsSave": Function(keep_retired_periods_save, (int, int)),
}
