"""The HTTP side shared by the admin and account web interfaces.

Each interface is a Quart blueprint at its configured path with mox's
routing: ``POST api/<Function>`` is a sherpa call (any other method 405),
authenticated by session cookie and ``x-mox-csrf`` header except for
``LoginPrep`` and ``Login``; pages are ``GET`` routes the interface adds,
authenticated by the session cookie alone (they change nothing). Every
answer carries mox's security headers; pages may loosen nothing but add
their own stricter policies (the message viewer's frame).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from quart import Blueprint, Response, request

from core import sherpa
from core.plugin_api import PluginContext
from core.webui.auth import (
    AuthError,
    Session,
    WebAuth,
    WebRequest,
    client_ip,
    forwarded_for_listener,
)
from core.webui.pages import add_static

SECURITY_HEADERS = {
    "X-Frame-Options": "deny",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
#: Pages use only their own scripts and styles; nothing from elsewhere.
PAGE_CSP = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"
PUBLIC_FUNCTIONS = ("LoginPrep", "Login")


@dataclass
class Call:
    """What an API function gets: the server, the caller's session and request."""

    ctx: PluginContext
    session: Session | None
    req: WebRequest

    @property
    def account(self) -> str:
        assert self.session is not None
        return self.session.account


@dataclass(frozen=True)
class Interface:
    """One web interface: its name, listener keys, sessions and functions."""

    name: str
    keys: tuple[str, str]
    auth: WebAuth
    functions: dict[str, sherpa.Function]


def web_request(ctx: PluginContext, iface: Interface, path: str) -> WebRequest:
    scope = request.scope
    server = scope.get("server") or ("", 0)
    tls = scope.get("scheme") == "https"
    forwarded = forwarded_for_listener(ctx.config, iface.keys, int(server[1] or 0), tls)
    client = scope.get("client")
    ip = client_ip(str(client[0]) if client else None, request.headers.get("X-Forwarded-For"), forwarded)
    https = request.headers.get("X-Forwarded-Proto") == "https" if forwarded else tls
    return WebRequest(
        cookies=dict(request.cookies),
        csrf=request.headers.get("x-mox-csrf", ""),
        ip=ip,
        https=https,
        cookie_path=path,
    )


def finish(resp: Response, req: WebRequest) -> Response:
    for c in req.set_cookies:
        resp.set_cookie(**c)
    return resp


def json_response(status: int, body: bytes) -> Response:
    return Response(body, status=status, headers={"Content-Type": sherpa.JSON_TYPE})


def text_response(status: int, text: str) -> Response:
    return Response(text + "\n", status=status, headers={"Content-Type": "text/plain; charset=utf-8"})


#: API requests are small JSON documents; anything bigger is refused unread
#: (the HTTP layer leaves body limits to each service).
MAX_BODY = 1024 * 1024


#: An oversized body is read and dropped up to this size, so the client gets
#: the error answer instead of a reset connection; beyond it the connection closes.
DRAIN_MAX = 16 * 1024 * 1024


async def _read_body(limit: int) -> bytes | None:
    """The request body, or None when it is larger than ``limit`` bytes."""
    declared = int(request.headers.get("Content-Length") or 0)
    data = bytearray()
    seen = 0
    if declared <= DRAIN_MAX:
        async for chunk in request.body:
            seen += len(chunk)
            if seen <= limit:
                data += chunk
            elif seen > DRAIN_MAX:
                break
    if declared > limit or seen > limit:
        return None
    return bytes(data)


PageSetup = Callable[[Blueprint, Callable[[], Any]], None]


def make_blueprint(ctx: PluginContext, iface: Interface, path: str, pages: PageSetup | None = None) -> Blueprint:
    """The interface's blueprint at ``path`` (ends with ``/``)."""
    prefix = path.rstrip("/")
    bp = Blueprint(iface.name, __name__, url_prefix=prefix or None)

    @bp.after_request
    async def headers(resp: Response) -> Response:
        for k, v in SECURITY_HEADERS.items():
            resp.headers.setdefault(k, v)
        if resp.content_type and resp.content_type.startswith("text/html"):
            resp.headers.setdefault("Content-Security-Policy", PAGE_CSP)
        return resp

    async def api(name: str) -> Response:
        if request.method != "POST":
            return text_response(405, "405 - method not allowed - use post")
        req = web_request(ctx, iface, path)
        session = None
        if name not in PUBLIC_FUNCTIONS:
            try:
                session = await iface.auth.check(req, require_csrf=True)
            except AuthError as exc:
                if exc.status == 429:
                    return text_response(429, "429 - too many auth attempts")
                return json_response(exc.status, sherpa.error_body(exc.error))
        body = await _read_body(MAX_BODY)
        if body is None:
            err = sherpa.SherpaError(sherpa.BAD_REQUEST, f"request body larger than {MAX_BODY} bytes")
            return json_response(413, sherpa.error_body(err))
        status, out = await sherpa.call(
            iface.functions, name, body, request.headers.get("Content-Type", ""), Call(ctx, session, req)
        )
        return finish(json_response(status, out), req)

    async def api_doc() -> Response:
        doc = {"Name": iface.name, "Functions": sorted(iface.functions)}
        return json_response(200, json.dumps(doc).encode())

    bp.add_url_rule("/api/", view_func=api_doc, methods=["GET"], endpoint="api_doc")
    bp.add_url_rule(
        "/api/<name>", view_func=api, methods=["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"],
        endpoint="api", provide_automatic_options=False,
    )

    async def current_session() -> Session | None:
        """The page viewer's session, or None (the page then shows the login form)."""
        req = web_request(ctx, iface, path)
        try:
            return await iface.auth.check(req, require_csrf=False)
        except AuthError:
            return None

    add_static(bp)
    if pages is not None:
        pages(bp, current_session)
    return bp
