"""moxtrio's webapi extension methods, beside mox's twelve under ``<path>v0/``.

Extension methods are POST-only and never shadow a mox method. Their
request is JSON, either as mox's form field ``request`` (urlencoded) or as
an ``application/json`` body; the suppression import takes the list itself
as the body (CSV or JSON). Authentication, the rate limiter and the error
shape (400 with ``Code``/``Message``) are the same as for mox's methods.

The methods are listed in :mod:`plugins.webapi.ext_methods`; a handler
gets an :class:`ExtCall` and returns a Quart response (so large results
can stream).
"""

from __future__ import annotations

import json
import logging
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import trio
from quart import Response, request

from moxtrio import PluginContext
from plugins.webapi.answers import JSON_TYPE, auth_error_answer, error_answer
from plugins.webapi.auth import HTTPAuthError, Login
from plugins.webapi.errors import WebapiError, protocol
from plugins.webapi.jsoncodec import encode_bytes

log = logging.getLogger("moxtrio.webapi.extensions")

#: JSON requests of extension methods (the import body has its own limit).
REQUEST_MAX = 10 << 20


@dataclass
class ExtCall:
    """An authenticated call of an extension method."""

    ctx: PluginContext
    login: Login

    async def body(self, limit: int) -> bytes:
        """The request body; ``messageTooLarge`` past ``limit`` bytes."""
        chunks: list[bytes] = []
        n = 0
        async for chunk in request.body:
            n += len(chunk)
            if n > limit:
                raise WebapiError("messageTooLarge", f"request body larger than {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def chunks(self, limit: int) -> AsyncIterator[bytes]:
        """The request body piece by piece; ``messageTooLarge`` past ``limit`` bytes."""
        n = 0
        async for chunk in request.body:
            n += len(chunk)
            if n > limit:
                raise WebapiError("messageTooLarge", f"request body larger than {limit} bytes")
            yield chunk

    async def json_request(self) -> dict[str, Any]:
        """The method's JSON object (``request`` form field or JSON body; empty = {})."""
        raw = await self.body(REQUEST_MAX)
        ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype == "application/x-www-form-urlencoded":
            fields = urllib.parse.parse_qs(raw.decode("utf-8", "replace"))
            text = (fields.get("request") or [""])[0]
        else:
            text = raw.decode("utf-8", "replace")
        if not text.strip():
            return {}
        try:
            value = json.loads(text)
        except ValueError as exc:
            raise protocol(f"parsing request: {exc}") from None
        if not isinstance(value, dict):
            raise protocol("parsing request: expected a JSON object")
        return value

    def query(self, name: str, default: str = "") -> str:
        return str(request.args.get(name, default))


ExtHandler = Callable[[ExtCall], Awaitable[Response]]


def json_result(value: Any) -> Response:
    resp = Response(encode_bytes(value), status=200)
    resp.headers["Content-Type"] = JSON_TYPE
    return resp


def _error(err: WebapiError) -> Response:
    return error_answer(err).response()


async def call_extension(service: Any, name: str, handler: ExtHandler) -> Response:
    """Authenticate like mox's methods, then run extension ``name``'s ``handler``."""
    scope = request.scope
    server = scope.get("server") or ("", 0)
    linfo = service.listener(str(server[0]), int(server[1] or 0), scope.get("scheme") == "https")
    client = scope.get("client")
    try:
        login = await service.auth.authenticate(
            request.headers.get("Authorization"),
            str(client[0]) if client else None,
            request.headers.get("X-Forwarded-For"),
            linfo.forwarded,
        )
    except HTTPAuthError as exc:
        return auth_error_answer(exc).response()
    except WebapiError as exc:
        return _error(exc)
    try:
        return await handler(ExtCall(service.ctx, login))
    except WebapiError as exc:
        return _error(exc)
    except trio.Cancelled:
        raise
    except Exception:  # noqa: BLE001 - a bug must not become a 500 without a code
        log.exception("webapi extension %s: unhandled error", name)
        return _error(WebapiError("server", "unhandled error"))
