"""mox's "sherpa" JSON API convention, for the admin and account web interfaces.

A call is ``POST <base>api/<Function>`` with a JSON body ``{"params": [...]}``
(positional parameters) and ``Content-Type: application/json``; the answer is
``{"result": value}`` (an array when the function returns several values) or
``{"error": {"code": ..., "message": ...}}``. As mox's sherpa library: an
unknown function answers HTTP 404 with ``sherpa:badFunction``, request and
parameter problems HTTP 200 with ``sherpa:badRequest``/``sherpa:badParams``,
and a function's own error HTTP 200 with its code (``user:error``,
``server:error``...). Unknown fields in the request, and in struct
parameters, are refused, as sherpa does.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import types
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("moxtrio.sherpa")

BAD_FUNCTION = "sherpa:badFunction"
BAD_REQUEST = "sherpa:badRequest"
BAD_PARAMS = "sherpa:badParams"
USER_ERROR = "user:error"
SERVER_ERROR = "server:error"
JSON_TYPE = "application/json; charset=utf-8"


class SherpaError(Exception):
    """An error answer: ``{"error": {"code": code, "message": message}}``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def to_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


def user_error(message: str) -> SherpaError:
    return SherpaError(USER_ERROR, message)


Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Function:
    """An API function: its handler gets the call's context object and the decoded parameters."""

    handler: Handler
    params: tuple[Any, ...]  # parameter types: str, int, bool, list[...], dataclasses, X | None


def parse_call(name: str, body: bytes, content_type: str, fn: Function) -> list[Any]:
    """The decoded parameters of a call, or SherpaError as sherpa answers it."""
    mt, _, rest = content_type.partition(";")
    if not content_type:
        raise SherpaError(BAD_REQUEST, "missing content-type")
    if mt.strip().lower() != "application/json":
        raise SherpaError(BAD_REQUEST, f'unrecognized content-type "{mt.strip()}", expecting "application/json"')
    charset = ""
    for p in rest.split(";"):
        k, _, v = p.partition("=")
        if k.strip().lower() == "charset":
            charset = v.strip().strip('"').lower()
    if charset not in ("", "utf-8"):
        raise SherpaError(BAD_REQUEST, f'unexpected charset "{charset}", expecting "utf-8"')
    prefix = f"function {json.dumps(name)}"
    try:
        req = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SherpaError(BAD_REQUEST, f"{prefix}: invalid JSON request body: {exc}") from None
    if not isinstance(req, dict) or set(req) - {"params"}:
        raise SherpaError(BAD_REQUEST, f"{prefix}: invalid JSON request body: unknown field")
    params = req.get("params")
    if not isinstance(params, list):
        raise SherpaError(BAD_REQUEST, f"{prefix}: invalid JSON request body: params must be an array")
    if len(params) != len(fn.params):
        raise SherpaError(
            BAD_PARAMS, f"{prefix}: bad number of parameters: got {len(params)}, want {len(fn.params)}"
        )
    try:
        return [decode(tp, v, f"param {i}") for i, (tp, v) in enumerate(zip(fn.params, params, strict=True))]
    except ValueError as exc:
        raise SherpaError(BAD_PARAMS, f"{prefix}: parsing parameters: {exc}") from None


def decode(tp: Any, value: Any, where: str) -> Any:
    """``value`` (parsed JSON) as type ``tp``; ValueError names the place that is wrong.

    Go's decoder accepts ``null`` for any value, giving the zero value; so do we.
    """
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return decode(args[0], value, where)
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if value is None:
            return tp()
        if not isinstance(value, dict):
            raise ValueError(f"{where}: expected object")
        hints = typing.get_type_hints(tp)
        names = {f.name for f in dataclasses.fields(tp)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ValueError(f'{where}: unknown field "{unknown[0]}"')
        return tp(**{k: decode(hints[k], v, f"{where}.{k}") for k, v in value.items()})
    if origin is list:
        if value is None:
            return []
        if not isinstance(value, list):
            raise ValueError(f"{where}: expected array")
        (elem,) = typing.get_args(tp)
        return [decode(elem, v, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if value is None:
            return False
        if not isinstance(value, bool):
            raise ValueError(f"{where}: expected boolean")
        return value
    if tp is int:
        if value is None:
            return 0
        if isinstance(value, bool) or not isinstance(value, int | float) or int(value) != value:
            raise ValueError(f"{where}: expected integer")
        return int(value)
    if tp is str:
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError(f"{where}: expected string")
        return value
    raise ValueError(f"{where}: unsupported parameter type {tp!r}")


def result_body(result: Any) -> bytes:
    return (json.dumps({"result": result}, ensure_ascii=False) + "\n").encode("utf-8")


def error_body(err: SherpaError) -> bytes:
    return (json.dumps({"error": err.to_json()}, ensure_ascii=False) + "\n").encode("utf-8")


async def call(functions: dict[str, Function], name: str, body: bytes, content_type: str,
               context: Any) -> tuple[int, bytes]:
    """Run function ``name``; returns the HTTP status and JSON body to answer."""
    fn = functions.get(name)
    if fn is None:
        return 404, error_body(SherpaError(BAD_FUNCTION, f"function {json.dumps(name)} does not exist"))
    try:
        params = parse_call(name, body, content_type, fn)
        result = await fn.handler(context, *params)
    except SherpaError as exc:
        return 200, error_body(exc)
    except Exception as exc:  # noqa: BLE001 - a server error answer, with the cause logged
        log.exception("sherpa function %s", name)
        return 200, error_body(SherpaError(SERVER_ERROR, f"{name}: {exc}"))
    return 200, result_body(result)
