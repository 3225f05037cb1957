"""The webapi's method calls, independent of the server path that carries them.

Processing order for ``POST <base>v0/<Method>`` is mox's, since it decides
which error a client sees first: unknown method (404), missing credentials
(401), client IP, rate limiter (429), credentials (401), content type,
form, ``request`` field, JSON, then the method itself. The Quart blueprint
(:mod:`plugins.webapi.routes`) and the ASGI fast path
(:mod:`plugins.webapi.fastpath`) both answer through :class:`WebapiService`;
this module does not import Quart, so a server that only answers method
calls never loads it.
"""

from __future__ import annotations

import ipaddress
import logging
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import trio

from moxtrio import PluginContext
from plugins.webapi import idempotency, messages, suppression
from plugins.webapi.answers import JSON_TYPE, Answer, RequestView, auth_error_answer, error_answer
from plugins.webapi.auth import Authenticator, HTTPAuthError
from plugins.webapi.errors import WebapiError, protocol
from plugins.webapi.forms import (
    DRAIN_MAX,
    FORM_TYPES,
    Form,
    body_limit,
    media_type,
    read_form,
    too_large,
)
from plugins.webapi.jsoncodec import DecodeError, decode_request, encode_bytes
from plugins.webapi.send import CallInfo
from plugins.webapi.types import METHODS

if TYPE_CHECKING:
    from quart import Response

log = logging.getLogger("moxtrio.webapi")

API_VERSION = "v0"
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]
SECURITY_HEADERS = {
    "X-Frame-Options": "deny",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self' 'unsafe-inline' data:",
    "Referrer-Policy": "same-origin",
}

Handler = Callable[[CallInfo, Any], Awaitable[Any]]

HANDLERS: dict[str, Handler] = {
    "MessageDelete": messages.message_delete,
    "MessageFlagsAdd": messages.message_flags_add,
    "MessageFlagsRemove": messages.message_flags_remove,
    "MessageGet": messages.message_get,
    "MessageMove": messages.message_move,
    "MessagePartGet": messages.message_part_get,
    "MessageRawGet": messages.message_raw_get,
    "Send": idempotency.send_idempotent,
    "SuppressionAdd": suppression.suppression_add,
    "SuppressionList": suppression.suppression_list,
    "SuppressionPresent": suppression.suppression_present,
    "SuppressionRemove": suppression.suppression_remove,
}
assert list(HANDLERS) == list(METHODS)


@dataclass(frozen=True)
class ListenerInfo:
    """What a request needs from the listener it came in on."""

    forwarded: bool
    hostname: str
    max_message_size: int


def _ip_matches(listener_ips: list[str], host: str) -> bool:
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    for s in listener_ips:
        try:
            lip = ipaddress.ip_address(s)
        except ValueError:
            continue
        if lip == ip or lip.is_unspecified:
            return True
    return False


class WebapiService:
    """State of one mounted webapi: the authenticator and listener lookups."""

    def __init__(self, ctx: PluginContext, path: str) -> None:
        self.ctx = ctx
        self.path = path
        # One authenticator per server, shared by every mounted path.
        auth = ctx.service(Authenticator)
        if auth is None:
            auth = Authenticator(ctx)
            ctx.provide(Authenticator, auth)
        self.auth: Authenticator = auth
        self._listeners: dict[tuple[str, int, bool], ListenerInfo] = {}

    def listener(self, host: str, port: int, tls: bool) -> ListenerInfo:
        key = (host, port, tls)
        info = self._listeners.get(key)
        if info is not None:
            return info
        static = self.ctx.config.static
        svc_key = "WebAPIHTTPS" if tls else "WebAPIHTTP"
        chosen = None
        for _, lst in sorted(static.Listeners.items()):
            ws = getattr(lst, svc_key, None)
            if ws is None or not ws.Enabled:
                continue
            if lst.port(svc_key) == port and _ip_matches(list(lst.IPs), host):
                chosen = lst
                break
        if chosen is None:
            # Behind an unusual mount: take the first listener serving the webapi.
            for _, lst in sorted(static.Listeners.items()):
                if lst.enabled("WebAPIHTTP") or lst.enabled("WebAPIHTTPS"):
                    chosen = lst
                    break
        if chosen is None:
            info = ListenerInfo(False, static.Hostname, 100 * 1024 * 1024)
        else:
            ws = getattr(chosen, svc_key)
            info = ListenerInfo(
                forwarded=bool(ws.Forwarded),
                hostname=chosen.Hostname or static.Hostname,
                max_message_size=chosen.smtp_max_message_size,
            )
        self._listeners[key] = info
        return info

    async def call(self, name: str) -> Response:
        """The method call of the current Quart request."""
        return (await self.answer(name, RequestView.from_quart())).response()

    async def answer(self, name: str, req: RequestView) -> Answer:
        """Authenticate, read the form, decode the request and run method ``name``."""
        method = METHODS[name]
        scope = req.scope
        server = scope.get("server") or ("", 0)
        tls = scope.get("scheme") == "https"
        linfo = self.listener(str(server[0]), int(server[1] or 0), tls)
        client = scope.get("client")
        peer = str(client[0]) if client else None
        try:
            login = await self.auth.authenticate(
                req.headers.get("Authorization"),
                peer,
                req.headers.get("X-Forwarded-For"),
                linfo.forwarded,
                count_sent=name == "Send",
            )
        except HTTPAuthError as exc:
            return auth_error_answer(exc)
        except WebapiError as exc:
            return error_answer(exc)

        form: Form | None = None
        try:
            content_type = req.headers.get("Content-Type")
            mt = media_type(content_type)
            length = req.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > DRAIN_MAX:
                # Not worth reading at all.
                if mt not in FORM_TYPES:
                    raise protocol("missing/empty request")  # never parsed, as in mox
                if int(length) > body_limit(mt, linfo.max_message_size) + DRAIN_MAX:
                    raise too_large(mt)
            form = await read_form(
                req.body, mt, content_type or "",
                tmp_dir=self.ctx.store.files.tmp_dir, max_message_size=linfo.max_message_size,
            )
            if form.request == "":
                raise protocol("missing/empty request")
            try:
                decoded = decode_request(form.request, method.request)
            except DecodeError as exc:
                raise protocol(f"parsing request: {exc}") from None
            call = CallInfo(
                ctx=self.ctx,
                login=login,
                hostname=linfo.hostname,
                max_message_size=linfo.max_message_size,
                tls=None,
                uploads=form.uploads,
                headers=req.headers,
            )
            result = await HANDLERS[name](call, decoded)
        except WebapiError as exc:
            return error_answer(exc)
        except trio.Cancelled:
            raise
        except Exception:  # noqa: BLE001 - a bug must not become a 500 without a code
            log.exception("webapi %s: unhandled error", name)
            return error_answer(WebapiError("server", "unhandled error"))
        finally:
            if form is not None and any(u.path is not None for u in form.uploads):
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(form.cleanup)
        if method.result is None:
            data, ctype = result
            return Answer(200, data, ctype)
        return Answer(200, encode_bytes(result), JSON_TYPE)


@dataclass
class _HostAnswers:
    """:func:`host_allowed`'s answers for one config version (static and dynamic part)."""

    static: Any
    dynamic: Any
    answers: dict[str, bool]


#: Per loaded config; an entry is valid while its static and dynamic parts are
#: the same objects (a domains.conf reload makes a new dynamic part).
_HOST_ANSWERS: weakref.WeakKeyDictionary[Any, _HostAnswers] = weakref.WeakKeyDictionary()
#: Answers kept per config version at most (Host headers are the client's choice).
HOST_ANSWERS_MAX = 1024


def host_allowed(ctx: PluginContext, host_header: str) -> bool:
    """Whether an HTTP Host (with or without port) may reach the webapi.

    Asked for every request with the same few Host values: the answer is
    remembered until the config changes (the name set it depends on covers
    every listener and domain).
    """
    config = ctx.config
    static, dynamic = config.static, config.dynamic
    try:
        entry = _HOST_ANSWERS.get(config)
        if entry is None or entry.static is not static or entry.dynamic is not dynamic:
            entry = _HostAnswers(static, dynamic, {})
            _HOST_ANSWERS[config] = entry
    except TypeError:  # a config object without weak references: nothing to remember
        return _host_allowed(static, dynamic, host_header)
    answer = entry.answers.get(host_header)
    if answer is None:
        answer = _host_allowed(static, dynamic, host_header)
        if len(entry.answers) >= HOST_ANSWERS_MAX:
            entry.answers.clear()
        entry.answers[host_header] = answer
    return answer


def _host_allowed(static: Any, dynamic: Any, host_header: str) -> bool:
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[1 : host.find("]")] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    host = host.rstrip(".")
    if not host or host == "localhost":
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    names = {static.Hostname.lower()}
    names.update((getattr(ln, "Hostname", "") or "").lower() for ln in static.Listeners.values())
    names.update((d.ClientSettingsDomain or "").lower() for d in dynamic.Domains.values())
    names.discard("")
    return host in names
