"""The Suppression* methods: thin calls to whichever plugin offers suppression lists.

The webapi does not own the suppression list; it validates the address
(``badAddress`` as mox) and asks through the ``moxtrio_suppression_op``
hook, so the suppression plugin can be replaced or absent. Contract:

* ``op="list"``, ``args={}`` -> an iterable of entries;
* ``op="add"``, ``args={"address", "manual", "reason"}`` -> any non-None value;
* ``op="remove"``, ``args={"address"}`` -> any non-None value;
* ``op="present"``, ``args={"address"}`` -> a bool.

``args`` carries the request's fields both under those names and under
mox's JSON names (``EmailAddress``, ``Manual``, ``Reason``). An entry may be
a :class:`plugins.webapi.types.Suppression`, a mapping or an object with
mox's field names or their snake_case forms. A plugin error becomes the
error answer: an exception with a ``code`` attribute naming one of mox's
codes gives that code, any other exception code ``error`` with its text
(mox answers ``error`` for a duplicate add or an absent remove). No plugin
answering (``None``) gives a ``server`` error saying so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from core.dispatch import HookFailed
from core.message.address import AddressError, parse_address
from plugins.webapi.errors import WebapiError, server
from plugins.webapi.jsoncodec import parse_time
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

_SNAKE = {
    "ID": "id",
    "Created": "created",
    "Account": "account",
    "BaseAddress": "base_address",
    "OriginalAddress": "original_address",
    "Manual": "manual",
    "Reason": "reason",
}


def _check_address(address: str) -> None:
    try:
        parse_address(address)
    except AddressError as exc:
        raise WebapiError("badAddress", f'parsing address "{address}": {exc}') from None


def _args(address: str, manual: bool | None = None, reason: str | None = None) -> dict[str, Any]:
    args: dict[str, Any] = {"address": address, "EmailAddress": address}
    if manual is not None:
        args["manual"] = args["Manual"] = manual
    if reason is not None:
        args["reason"] = args["Reason"] = reason
    return args


async def _op(call: CallInfo, op: str, args: dict[str, Any]) -> Any:
    ctx = call.ctx
    try:
        result = await ctx.hooks.first(
            "moxtrio_suppression_op", ctx=ctx, account=call.login.account, op=op, args=args
        )
    except HookFailed as exc:
        cause = exc.cause
        if isinstance(cause, WebapiError):
            raise cause from None
        if isinstance(cause, BaseException):
            code = getattr(cause, "code", None)
            if isinstance(code, str) and code in ERROR_CODES:
                raise WebapiError(code, str(cause)) from None
            raise WebapiError("error", str(cause) or type(cause).__name__) from None
        raise server(f"suppression list: {cause}") from None
    if result is None:
        raise server(NOT_AVAILABLE)
    return result


def _field(entry: Any, name: str) -> Any:
    if isinstance(entry, Mapping):
        if name in entry:
            return entry[name]
        return entry.get(_SNAKE[name])
    if hasattr(entry, name):
        return getattr(entry, name)
    return getattr(entry, _SNAKE[name], None)


def _created(v: Any) -> datetime:
    if isinstance(v, datetime):
        return v if v.tzinfo is not None else v.replace(tzinfo=UTC)
    if isinstance(v, str):
        try:
            return parse_time(v)
        except ValueError:
            pass
    return datetime.min.replace(tzinfo=UTC)


def to_suppression(entry: Any) -> Suppression:
    """A plugin's entry as the webapi's Suppression (local time for Created, as mox)."""
    if isinstance(entry, Suppression):
        return entry
    created = _created(_field(entry, "Created"))
    if created.year > 1:
        created = created.astimezone()
    return Suppression(
        ID=int(_field(entry, "ID") or 0),
        Created=created,
        Account=str(_field(entry, "Account") or ""),
        BaseAddress=str(_field(entry, "BaseAddress") or ""),
        OriginalAddress=str(_field(entry, "OriginalAddress") or ""),
        Manual=bool(_field(entry, "Manual")),
        Reason=str(_field(entry, "Reason") or ""),
    )


async def suppression_list(call: CallInfo, req: SuppressionListRequest) -> SuppressionListResult:
    result = await _op(call, "list", {})
    if isinstance(result, Mapping) and "Suppressions" in result:
        result = result["Suppressions"]
    if not isinstance(result, Iterable):
        raise server("suppression list: unexpected answer from plugin")
    return SuppressionListResult(Suppressions=[to_suppression(e) for e in result])


async def suppression_add(call: CallInfo, req: SuppressionAddRequest) -> SuppressionAddResult:
    _check_address(req.EmailAddress)
    await _op(call, "add", _args(req.EmailAddress, req.Manual, req.Reason))
    return SuppressionAddResult()


async def suppression_remove(
    call: CallInfo, req: SuppressionRemoveRequest
) -> SuppressionRemoveResult:
    _check_address(req.EmailAddress)
    await _op(call, "remove", _args(req.EmailAddress))
    return SuppressionRemoveResult()


async def suppression_present(
    call: CallInfo, req: SuppressionPresentRequest
) -> SuppressionPresentResult:
    _check_address(req.EmailAddress)
    result = await _op(call, "present", _args(req.EmailAddress))
    if isinstance(result, Mapping):
        result = result.get("Present", result.get("present", False))
    return SuppressionPresentResult(Present=bool(result))
