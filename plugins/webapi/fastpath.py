"""The webapi's method calls answered straight from ASGI, without Quart.

``POST <path>v0/<Method>`` is what applications send all day (Send above
all). Quart's per-request work (request context, URL map, before/after
hooks, response object) cost about a sixth of a Send's CPU, for a route
that needs none of it. Here such a call is recognised from the ASGI scope
and run through the same :meth:`WebapiService.answer` and access log as
the blueprint's route, its answer written with the same header lines in
the same order plus the same security headers. Everything else (pages,
redirects, extensions, other methods and hosts the blueprint refuses) is
left to Quart.

As in Quart, a client that disconnects before its request body is complete
ends the call without an answer; once the body is in, the call finishes
(a Send is queued or not, never half).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any

import trio

from moxtrio import PluginContext
from plugins.webapi.accesslog import logged_answer
from plugins.webapi.answers import RequestView
from plugins.webapi.service import API_VERSION, SECURITY_HEADERS, WebapiService, host_allowed
from plugins.webapi.types import EXTENSION_NAMES, METHODS


class ScopeHeaders:
    """An ASGI scope's headers by case-insensitive name (the first of repeated ones)."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._by_name: dict[str, str] = {}
        for name, value in raw:
            self._by_name.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def get(self, key: str) -> str | None:
        return self._by_name.get(key.lower())


class ASGIBody:
    """The request body as ``http.request`` messages arrive, read only when asked."""

    def __init__(self, receive: Any, disconnected: Callable[[], None]) -> None:
        self._receive = receive
        self._disconnected = disconnected
        self._done = False

    def __aiter__(self) -> ASGIBody:
        return self

    async def __anext__(self) -> bytes:
        while not self._done:
            message = await self._receive()
            if message["type"] != "http.request":
                # The client went away mid-body: end the call (see the module docstring).
                self._done = True
                self._disconnected()
                await trio.lowlevel.checkpoint()
                break
            self._done = not message.get("more_body", False)
            chunk: bytes = message.get("body", b"")
            if chunk:
                return chunk
        raise StopAsyncIteration


async def _serve(service: WebapiService, name: str, scope: Mapping[str, Any], headers: ScopeHeaders,
                 receive: Any, send: Any) -> None:
    with trio.CancelScope() as call_scope:
        req = RequestView(scope, headers, ASGIBody(receive, call_scope.cancel))
        answer = await logged_answer(service, name, req)
    if call_scope.cancelled_caught:
        return
    await send({"type": "http.response.start", "status": answer.status,
                "headers": answer.asgi_headers(SECURITY_HEADERS)})
    await send({"type": "http.response.body", "body": answer.body, "more_body": False})


def make_route(
    ctx: PluginContext, path: str
) -> Callable[[Mapping[str, Any]], Callable[[Any, Any], Awaitable[None]] | None]:
    """The ASGI route for the webapi mounted at ``path`` (ends with ``/``)."""
    service = WebapiService(ctx, path)
    base = f"{path}{API_VERSION}/"

    def route(scope: Mapping[str, Any]) -> Callable[[Any, Any], Awaitable[None]] | None:
        if scope.get("method") != "POST" or scope.get("root_path"):
            return None
        full: str = scope.get("path", "")
        if not full.startswith(base):
            return None
        name = full[len(base):]
        if name not in METHODS or name in EXTENSION_NAMES:
            return None
        headers = ScopeHeaders(scope.get("headers") or [])
        host = headers.get("host")
        if host is None or not host_allowed(ctx, host):
            return None  # Quart answers (404 for a host the webapi does not serve)
        return partial(_serve, service, name, scope, headers)

    return route
