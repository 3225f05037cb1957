"""The Suppression* methods: thin calls to whichever plugin offers suppression lists.

The webapi does not own the suppression list; it validates the address
(``badAddress`` as mox) and calls the core's ``SuppressionProvider`` found
in the server's context, so the suppression plugin can be replaced or
absent. A provider's ``ServiceError`` becomes the error answer with its
code (mox answers ``error`` for a duplicate add or an absent remove); no
provider gives a ``server`` error saying so.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from core.message.address import AddressError, parse_address
from moxtrio import PluginContext, ServiceError, SuppressionEntry, SuppressionProvider
from plugins.webapi.errors import WebapiError, server
from plugins.webapi.send import CallInfo
from plugins.webapi.types import (
    ERROR_CODES,
    Suppression,
    SuppressionAddRequest,
    SuppressionAddResult,
    SuppressionListRequest,
    SuppressionListResult,
    SuppressionPresentRequest,
    SuppressionPresentResult,
    SuppressionRemoveRequest,
    SuppressionRemoveResult,
)

NOT_AVAILABLE = "suppression lists are not available: no plugin offers them"

T = TypeVar("T")


def _check_address(address: str) -> None:
    try:
        parse_address(address)
    except AddressError as exc:
        raise WebapiError("badAddress", f'parsing address "{address}": {exc}') from None


def provider(ctx: PluginContext) -> SuppressionProvider:
    """The server's suppression lists; a ``server`` error when no plugin offers them."""
    found = ctx.service(SuppressionProvider)  # type: ignore[type-abstract]
    if found is None:
        raise server(NOT_AVAILABLE)
    return found


async def provider_call(fn: Callable[[], Awaitable[T]]) -> T:
    """Run a provider call; its ServiceError becomes the answer with the same code."""
    try:
        return await fn()
    except ServiceError as exc:
        code = exc.code if exc.code in ERROR_CODES else "error"
        raise WebapiError(code, exc.message) from None


def to_suppression(entry: SuppressionEntry) -> Suppression:
    """A provider's entry as the webapi's Suppression (local time for Created, as mox)."""
    created = entry.created
    if created.year > 1:
        created = created.astimezone()
    return Suppression(
        ID=entry.id,
        Created=created,
        Account=entry.account,
        BaseAddress=entry.base_address,
        OriginalAddress=entry.original_address,
        Manual=entry.manual,
        Reason=entry.reason,
    )


async def suppression_list(call: CallInfo, req: SuppressionListRequest) -> SuppressionListResult:
    p = provider(call.ctx)
    entries = await provider_call(lambda: p.list_suppressions(call.login.account))
    return SuppressionListResult(Suppressions=[to_suppression(e) for e in entries])


async def suppression_add(call: CallInfo, req: SuppressionAddRequest) -> SuppressionAddResult:
    _check_address(req.EmailAddress)
    p = provider(call.ctx)
    await provider_call(lambda: p.add_suppression(
        call.login.account, req.EmailAddress, manual=req.Manual, reason=req.Reason
    ))
    return SuppressionAddResult()


async def suppression_remove(
    call: CallInfo, req: SuppressionRemoveRequest
) -> SuppressionRemoveResult:
    _check_address(req.EmailAddress)
    p = provider(call.ctx)
    await provider_call(lambda: p.remove_suppression(call.login.account, req.EmailAddress))
    return SuppressionRemoveResult()


async def suppression_present(
    call: CallInfo, req: SuppressionPresentRequest
) -> SuppressionPresentResult:
    _check_address(req.EmailAddress)
    p = provider(call.ctx)
    present = await provider_call(lambda: p.is_suppressed(call.login.account, req.EmailAddress))
    return SuppressionPresentResult(Present=present)
