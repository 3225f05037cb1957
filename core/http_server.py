"""Serving HTTP connections so that no client can stop the server.

Sockets are accepted here, and every connection runs in a task of its own
whose errors end that connection only (logged once with the peer address).
HTTP/1.1 is served by :mod:`core.http1`; a TLS client that negotiates HTTP/2
is handed to hypercorn (:mod:`core.http2`, imported on first use). On top of
the protocol, what a server facing the internet needs:

- a per-IP cap on concurrent connections, over all HTTP listeners;
- a deadline for the TLS handshake;
- graceful shutdown: listeners close, idle keep-alive connections close at
  once, requests in flight get a grace period to finish their answer.
"""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

import trio

from core.http1 import H1Connection, Shared, fmt_peer, host_port, plain_answer
from core.plugin_api import PluginConfigError, PluginContext

if TYPE_CHECKING:
    from core.http2 import H2Server

log = logging.getLogger("moxtrio.http")

SETTINGS_FILE = "http"
# Seconds for a client's TLS handshake (hypercorn's default).
HANDSHAKE_TIMEOUT = 60.0
# Seconds requests in flight get to finish once shutdown begins.
GRACEFUL_TIMEOUT = 3.0
BACKLOG = 100

_REFUSED = plain_answer(HTTPStatus.TOO_MANY_REQUESTS, "too many connections")


@dataclass
class HTTPSettings:
    """Limits of the HTTP listeners, from ``<config dir>/plugins/http.yaml``."""

    # Concurrent connections from one IP address, over all HTTP listeners.
    max_connections_per_ip: int = 100
    # Seconds for a whole request (headers and body) to arrive once its first
    # byte did. Generous: a 100 MB upload over a slow link must fit.
    request_timeout: float = 300.0
    # Seconds an idle keep-alive connection stays open (mox: 65).
    idle_timeout: float = 65.0


_KEYS = {
    "MaxConnectionsPerIP": "max_connections_per_ip",
    "RequestTimeout": "request_timeout",
    "IdleTimeout": "idle_timeout",
}


def http_settings(ctx: PluginContext) -> HTTPSettings:
    """Read and check http.yaml (a bad value stops the start with a clear error)."""
    raw = ctx.plugin_settings(SETTINGS_FILE)
    unknown = set(raw) - set(_KEYS)
    if unknown:
        raise PluginConfigError(f"http.yaml: unknown setting {sorted(unknown)[0]!r}")
    settings = HTTPSettings()
    for key, attr in _KEYS.items():
        if key not in raw:
            continue
        value = raw[key]
        if attr == "max_connections_per_ip":
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise PluginConfigError(f"http.yaml: {key} must be a positive integer")
        elif isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise PluginConfigError(f"http.yaml: {key} must be a positive number of seconds")
        setattr(settings, attr, value)
    return settings


@dataclass
class ConnectionCounter:
    """Open HTTP connections per client IP, shared by all listeners."""

    limit: int
    open: dict[str, int] = field(default_factory=dict)

    def acquire(self, ip: str) -> bool:
        n = self.open.get(ip, 0)
        if n >= self.limit:
            return False
        self.open[ip] = n + 1
        return True

    def release(self, ip: str) -> None:
        n = self.open.get(ip, 0) - 1
        if n > 0:
            self.open[ip] = n
        else:
            self.open.pop(ip, None)


@dataclass
class _Handler:
    """Runs one accepted connection; its errors end that connection only."""

    app: Any
    shared: Shared
    counter: ConnectionCounter
    settings: HTTPSettings
    h2: H2Server | None = None  # the listener's HTTP/2 server, made on its first connection

    async def __call__(self, stream: Any) -> None:
        tls = isinstance(stream, trio.SSLStream)
        sock = stream.transport_stream.socket if tls else stream.socket
        try:
            peer = host_port(sock.getpeername())
            server = host_port(sock.getsockname())
        except OSError:  # the client is gone already
            peer = None
        if peer is None:
            await trio.aclose_forcefully(stream)
            return
        ip = peer[0]
        if not self.counter.acquire(ip):
            log.info("http %s: too many connections from this address, refused", fmt_peer(peer))
            await _refuse(stream)
            return
        try:
            await self._serve(stream, tls, peer, server)
        except trio.Cancelled:
            raise
        except BaseExceptionGroup as group:
            # A Cancelled alone is the server stopping; any other error is
            # this connection's (a Cancelled beside it comes back at the
            # next checkpoint of the cancelled scope).
            _, errors = group.split(trio.Cancelled)
            if errors is None:
                raise
            _log_error(peer, errors)
        except Exception as exc:
            _log_error(peer, exc)
        finally:
            self.counter.release(ip)
            await trio.aclose_forcefully(stream)

    async def _serve(self, stream: Any, tls: bool, peer: tuple[str, int],
                     server: tuple[str, int] | None) -> None:
        if tls:
            try:
                with trio.fail_after(HANDSHAKE_TIMEOUT):
                    await stream.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError):
                return
            if stream.selected_alpn_protocol() == "h2":
                await self._h2().serve(stream)
                return
        await H1Connection(self.app, stream, self.shared, tls=tls, client=peer, server=server).run()

    def _h2(self) -> H2Server:
        if self.h2 is None:
            from core.http2 import H2Server

            self.h2 = H2Server(self.app, self.settings.request_timeout, self.settings.idle_timeout)
        return self.h2


def _log_error(peer: Any, error: BaseException) -> None:
    errors = ", ".join(repr(e) for e in _leaves(error))
    log.warning("http %s: connection ended by error: %s", fmt_peer(peer), errors)
    log.debug("http %s: error details", fmt_peer(peer), exc_info=error)


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for exc in group.exceptions for leaf in _leaves(exc)]
    return [group]


async def _refuse(stream: Any) -> None:
    """Tell a plain-HTTP client it has too many connections; TLS ones are
    closed at once (a handshake would spend our CPU on the excess)."""
    if not isinstance(stream, trio.SSLStream):
        with trio.move_on_after(1):
            try:
                await stream.send_all(_REFUSED)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
    await trio.aclose_forcefully(stream)


def _listen_socket(ip: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((ip, port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _bind_text(sock: socket.socket, tls: bool) -> str:
    host, port = sock.getsockname()[:2]
    host = f"[{host}]" if ":" in host else host
    return f"{'https' if tls else 'http'}://{host}:{port}"


async def serve(
    app: Any,
    ip: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    settings: HTTPSettings,
    counter: ConnectionCounter,
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``ip``:``port`` (TLS with ``ssl_context``) until ``shutdown_trigger`` returns."""
    sock = _listen_socket(ip, port)
    listener: trio.abc.Listener[Any] = trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    if ssl_context is not None:
        listener = trio.SSLListener(listener, ssl_context, https_compatible=True)
    binds = [_bind_text(sock, ssl_context is not None)]
    shared = Shared(settings.request_timeout, settings.idle_timeout)
    handler = _Handler(app, shared, counter, settings)
    async with trio.open_nursery() as server_nursery:
        async with trio.open_nursery() as accept_nursery:
            accept_nursery.start_soon(partial(
                trio.serve_listeners, handler, [listener], handler_nursery=server_nursery))
            task_status.started(binds)
            await shutdown_trigger()
            accept_nursery.cancel_scope.cancel()
        await listener.aclose()
        shared.terminate()
        if handler.h2 is not None:
            await handler.h2.terminate()
        # In-flight requests get the grace period; idle keep-alive
        # connections close now.
        server_nursery.cancel_scope.deadline = trio.current_time() + GRACEFUL_TIMEOUT
