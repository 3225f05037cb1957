"""Serving HTTP connections with hypercorn so that no client can stop the server.

hypercorn's trio worker lets an error on one connection (an h11 state
machine error after a client broke the protocol, for example) escape into
the server's nursery and end every listener. Here we accept the sockets
ourselves and run hypercorn's per-connection server for each one inside a
task of its own whose errors end that connection only (logged once with the
peer address). On top of hypercorn we add what a server facing the internet
needs and hypercorn lacks:

- a per-IP cap on concurrent connections;
- a whole-request deadline: a request whose headers and body have not all
  arrived in time is answered ``408`` and its connection closed;
- ``Connection: close`` on answers sent before the request body was read
  (an early 401/429), so a body arriving later is never taken for the next
  request;
- websocket upgrades refused with ``400`` when no route serves websockets;
- standard reason phrases in status lines (``HTTP/1.1 200 OK``) and our own
  ``Server`` header, as mox's Go server sends a reason phrase.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from typing import Any

import h11
import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.events import Body, EndBody
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.protocol.h11 import STREAM_ID, H11Protocol
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.statsd import StatsdLogger
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import parse_socket_addr, repr_socket_addr, wrap_app

from core.plugin_api import PluginConfigError, PluginContext

log = logging.getLogger("moxtrio.http")

SERVER_NAME = b"moxtrio"
SETTINGS_FILE = "http"
CLOSE_TIMEOUT = 2.0
# A closing connection drops what the client still sends for this long, up
# to this many bytes (see SafeTCPServer.protocol_send).
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024


def _plain_answer(status: HTTPStatus, text: str) -> bytes:
    """A complete answer that ends the connection, for when no request was parsed."""
    body = f"{status.value} - {text}\n".encode()
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n").encode() \
        + b"server: " + SERVER_NAME + b"\r\n\r\n" + body


_REFUSED = _plain_answer(HTTPStatus.TOO_MANY_REQUESTS, "too many connections")
_TIMED_OUT = _plain_answer(HTTPStatus.REQUEST_TIMEOUT, "request timeout")
_NO_WEBSOCKET = b"400 - websocket not supported\n"


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


class ServerConfig(HypercornConfig):
    """hypercorn config with our Server header and knowledge of the app."""

    websocket_routes: bool = False
    request_timeout: float = HTTPSettings.request_timeout

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        headers = super().response_headers(protocol)
        return [h for h in headers if h[0] != b"server"] + [(b"server", SERVER_NAME)]


def _with_reason(event: Any) -> Any:
    """The response with the standard reason phrase (h11 sends none by default)."""
    if event.reason:
        return event
    try:
        reason = HTTPStatus(event.status_code).phrase.encode("ascii")
    except ValueError:
        return event
    return type(event)(
        status_code=event.status_code, headers=event.headers, reason=reason,
        http_version=event.http_version,
    )


def _is_websocket_upgrade(request: h11.Request) -> bool:
    upgrade = connection = ""
    for name, value in request.headers:
        if name == b"upgrade":
            upgrade = value.decode("latin1").strip().lower()
        elif name == b"connection":
            connection = value.decode("latin1").lower()
    return upgrade == "websocket" and "upgrade" in [t.strip() for t in connection.split(",")]


class SafeH11Protocol(H11Protocol):
    """hypercorn's HTTP/1.1 protocol with our answers to misbehaving clients."""

    config: ServerConfig

    async def _create_stream(self, request: h11.Request) -> None:
        if _is_websocket_upgrade(request) and not self.config.websocket_routes:
            # hypercorn would hand the connection to its websocket stream,
            # whose rejection crashes on trailing bytes; no route wants it.
            await self._send_h11_event(h11.Response(
                status_code=400,
                headers=[(b"content-type", b"text/plain; charset=utf-8"),
                         (b"content-length", str(len(_NO_WEBSOCKET)).encode()),
                         (b"connection", b"close"), *self.config.response_headers("h11")],
            ))
            await self._send_h11_event(h11.Data(data=_NO_WEBSOCKET))
            await self._send_h11_event(h11.EndOfMessage())
            await self.send(Closed())
            return
        await super()._create_stream(request)

    async def _handle_events(self) -> None:
        # hypercorn's loop, except for bytes that follow a complete request
        # on a connection that must close (the client said Connection: close,
        # or we did with an early answer): hypercorn took them for a broken
        # next request and closed the connection, cutting short the answer
        # being written. They can never be a request here, so they are
        # dropped and the answer finishes; then the connection closes.
        while True:
            if self.connection.they_are_waiting_for_100_continue:
                await self._send_h11_event(
                    h11.InformationalResponse(status_code=100, headers=self.config.response_headers("h11"))
                )
            if (self.connection.their_state is h11.MUST_CLOSE and self.stream is not None
                    and self.connection.our_state in {h11.SEND_RESPONSE, h11.SEND_BODY}):
                break
            try:
                event = self.connection.next_event()
            except h11.RemoteProtocolError as error:
                if self.connection.our_state in {h11.IDLE, h11.SEND_RESPONSE}:
                    await self._send_error_response(error.error_status_hint)
                await self.send(Closed())
                break
            if isinstance(event, h11.Request):
                await self.send(Updated(idle=False))
                await self._check_protocol(event)
                await self._create_stream(event)
            elif event is h11.PAUSED:
                await self.can_read.clear()
                await self.can_read.wait()
            elif isinstance(event, h11.ConnectionClosed) or event is h11.NEED_DATA or self.stream is None:
                break
            elif isinstance(event, h11.Data):
                await self.stream.handle(Body(stream_id=STREAM_ID, data=event.data))
            elif isinstance(event, h11.EndOfMessage):
                await self.stream.handle(EndBody(stream_id=STREAM_ID))

    async def _send_h11_event(self, event: Any) -> None:
        if isinstance(event, h11.Response | h11.InformationalResponse):
            event = _with_reason(event)
        if isinstance(event, h11.Response) and self.connection.their_state is h11.SEND_BODY:
            # Answered before the request body was read (an early 401 or
            # 429): the rest of the body must not be parsed as a request.
            names = {name.lower() for name, _ in event.headers}
            if b"connection" not in names:
                event = h11.Response(
                    status_code=event.status_code, reason=event.reason,
                    headers=[*event.headers, (b"connection", b"close")],
                    http_version=event.http_version,
                )
        try:
            data = self.connection.send(event)
        except h11.LocalProtocolError as exc:
            # The client broke the protocol (or went away) while the app
            # was answering: nothing more can be said on this connection.
            log.debug("http %s: dropping answer: %s", _fmt_peer(self.client), exc)
            await self.send(Closed())
        else:
            if data:
                await self.send(RawData(data=data))

    async def _send_error_response(self, status_code: int) -> None:
        # h11 hints 501 for a transfer coding it does not know and 505 for
        # an HTTP version it does not speak: the client's doing, so a 4xx.
        await super()._send_error_response(400 if status_code >= 500 else status_code)

    def request_in_progress(self) -> bool:
        """Whether part of a request has arrived and the rest has not."""
        conn = self.connection
        if not isinstance(conn, h11.Connection):
            return False
        if conn.their_state is h11.SEND_BODY:
            return True
        return conn.their_state is h11.IDLE and bool(conn.trailing_data[0])

    def can_answer(self) -> bool:
        conn = self.connection
        return isinstance(conn, h11.Connection) and conn.our_state is h11.SEND_RESPONSE


class SafeProtocolWrapper(ProtocolWrapper):
    """hypercorn's protocol selection, with our HTTP/1.1 protocol."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if isinstance(self.protocol, H11Protocol):
            self.protocol = SafeH11Protocol(
                self.app, self.config, self.context, self.task_group, self.state, self.ssl,
                self.client, self.server, self.send,
            )


def _fmt_peer(client: Any) -> str:
    if not client:
        return "?"
    host, port = client[0], client[1]
    return f"[{host}]:{port}" if ":" in str(host) else f"{host}:{port}"


class SafeTCPServer(TCPServer):
    """hypercorn's connection server with a whole-request deadline."""

    config: ServerConfig

    async def run(self) -> None:
        # As hypercorn's, but with our protocol wrapper.
        try:
            try:
                with trio.fail_after(self.config.ssl_handshake_timeout):
                    await self.stream.do_handshake()
            except (trio.BrokenResourceError, trio.TooSlowError):
                return
            alpn_protocol = self.stream.selected_alpn_protocol()
            socket = self.stream.transport_stream.socket
            ssl = True
        except AttributeError:  # Not TLS.
            alpn_protocol = "http/1.1"
            socket = self.stream.socket
            ssl = False
        try:
            client = parse_socket_addr(socket.family, socket.getpeername())
            server = parse_socket_addr(socket.family, socket.getsockname())
            self.client = client
            async with TaskGroup() as task_group:
                self._task_group = task_group
                self.protocol = SafeProtocolWrapper(
                    self.app, self.config, self.context, task_group,
                    ConnectionState(self.state), ssl, client, server, self.protocol_send,
                    alpn_protocol,
                )
                await self.protocol.initiate()
                await self.idle_task.restart(self._task_group, self._idle_timeout)
                await self._read_data()
                # The client is gone or done: the keep-alive timer must not
                # hold the connection (and its slot) open; an app task still
                # answering a request is waited for.
                with trio.CancelScope(shield=True):
                    await self.idle_task.stop()
        except OSError:
            pass
        finally:
            await self._close()

    async def _close(self) -> None:
        # hypercorn closes from whichever task asked for it, often the app's
        # task that quart cancels right after the answer: unshielded, the
        # close is cancelled half-way and the connection stays open for good.
        # Shielded, but bounded: a TLS close_notify may block on a full buffer.
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + CLOSE_TIMEOUT
            await super()._close()
        if scope.cancelled_caught:
            await trio.aclose_forcefully(self.stream)

    _reading = False
    _closing_at: float | None = None
    _recv_scope: trio.CancelScope | None = None

    async def protocol_send(self, event: Any) -> None:
        if isinstance(event, Closed) and self._reading and self._closing_at is None \
                and not hasattr(self.stream, "transport_stream"):
            # Lingering close: end our side now, but read (and drop) what the
            # client is still sending for a moment. Closing a socket with
            # unread data makes the kernel send a reset, and a client still
            # sending its body would lose the answer it had not read yet.
            self._closing_at = trio.current_time()
            with trio.CancelScope(shield=True):
                async with self.send_lock:
                    try:
                        await self.stream.send_eof()
                    except (trio.BrokenResourceError, trio.ClosedResourceError,
                            trio.BusyResourceError):
                        pass
            if self._recv_scope is not None:
                self._recv_scope.deadline = self._closing_at + LINGER_SECONDS
            await self.protocol.handle(Closed())
            return
        if isinstance(event, Updated):
            # Sent from the app's task, which quart cancels once the answer
            # is out: unshielded, the keep-alive idle timer is cancelled as
            # it starts and an idle connection stays open for good.
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
            return
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        self._reading = True
        started: float | None = None
        drained = 0
        while True:
            h11p = self.protocol.protocol
            deadline = math.inf
            if self._closing_at is not None:
                deadline = self._closing_at + LINGER_SECONDS
            elif isinstance(h11p, SafeH11Protocol) and h11p.request_in_progress():
                if started is None:
                    started = trio.current_time()
                deadline = started + self.config.request_timeout
            elif isinstance(h11p, H2Protocol) and h11p.streams:
                # HTTP/2 multiplexes requests: a connection with open
                # streams must keep sending (a body, window updates).
                started = None
                deadline = trio.current_time() + self.config.request_timeout
            else:
                started = None
            data: bytes | bytearray | None = None
            try:
                with trio.CancelScope(deadline=deadline) as self._recv_scope:
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            finally:
                self._recv_scope = None
            if self._closing_at is not None:
                drained += len(data or b"")
                if not data or drained > LINGER_BYTES:
                    break
                continue
            if data is None:
                await self._request_timed_out()
                break
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        self._reading = False
        await self.protocol.handle(Closed())

    async def _request_timed_out(self) -> None:
        h11p = self.protocol.protocol
        log.info("http %s: request not received within %gs, closing",
                 _fmt_peer(getattr(self, "client", None)), self.config.request_timeout)
        if isinstance(h11p, SafeH11Protocol) and h11p.can_answer():
            await h11p._send_error_response(408)
        elif isinstance(h11p, SafeH11Protocol) and h11p.connection.our_state is h11.IDLE:
            # Only part of the request line or headers came: nothing was
            # said on this connection yet, so a plain answer is in order.
            await self.protocol_send(RawData(data=_TIMED_OUT))
        await self.protocol_send(Closed())


@dataclass
class _Handler:
    """Runs one accepted connection; its errors end that connection only."""

    app: Any
    config: ServerConfig
    context: WorkerContext
    state: dict[str, Any]
    counter: ConnectionCounter

    async def __call__(self, stream: Any) -> None:
        sock = stream.transport_stream.socket if hasattr(stream, "transport_stream") else stream.socket
        try:
            peer = parse_socket_addr(sock.family, sock.getpeername())
        except OSError:
            await trio.aclose_forcefully(stream)
            return
        ip = str(peer[0]) if peer else ""
        if not self.counter.acquire(ip):
            log.info("http %s: too many connections from this address, refused", _fmt_peer(peer))
            await _refuse(stream)
            return
        try:
            await SafeTCPServer(self.app, self.config, self.context, ConnectionState(self.state.copy()),
                                stream).run()
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


def _log_error(peer: Any, error: BaseException) -> None:
    errors = ", ".join(repr(e) for e in _leaves(error))
    log.warning("http %s: connection ended by error: %s", _fmt_peer(peer), errors)
    log.debug("http %s: error details", _fmt_peer(peer), exc_info=error)


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for exc in group.exceptions for leaf in _leaves(exc)]
    return [group]


async def _refuse(stream: Any) -> None:
    """Tell a plain-HTTP client it has too many connections; TLS ones are
    closed at once (a handshake would spend our CPU on the excess)."""
    if not hasattr(stream, "transport_stream"):
        with trio.move_on_after(1):
            try:
                await stream.send_all(_REFUSED)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
    await trio.aclose_forcefully(stream)


async def serve(
    app: Any,
    config: ServerConfig,
    counter: ConnectionCounter,
    *,
    shutdown_trigger: Callable[[], Awaitable[Any]],
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``app`` on ``config``'s binds until ``shutdown_trigger`` returns.

    As hypercorn's trio worker (lifespan, graceful close of in-flight
    requests), but every connection runs through :class:`_Handler`.
    """
    config.set_statsd_logger_class(StatsdLogger)
    app = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(app, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as server_nursery:
            sockets = config.create_sockets()
            listeners: list[Any] = []
            binds: list[str] = []
            ssl_context = config.create_ssl_context()
            for sock in sockets.secure_sockets:
                assert ssl_context is not None  # secure sockets exist only with a context
                sock.listen(config.backlog)
                listeners.append(trio.SSLListener(
                    trio.SocketListener(trio.socket.from_stdlib_socket(sock)), ssl_context,
                    https_compatible=True))
                binds.append("https://" + repr_socket_addr(sock.family, sock.getsockname()))
            for sock in sockets.insecure_sockets:
                sock.listen(config.backlog)
                listeners.append(trio.SocketListener(trio.socket.from_stdlib_socket(sock)))
                binds.append("http://" + repr_socket_addr(sock.family, sock.getsockname()))
            handler = _Handler(app, config, context, lifespan_state, counter)
            async with trio.open_nursery() as accept_nursery:
                accept_nursery.start_soon(partial(
                    trio.serve_listeners, handler, listeners, handler_nursery=server_nursery))
                task_status.started(binds)
                await shutdown_trigger()
                accept_nursery.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            await context.terminated.set()
            # In-flight requests get the grace period; idle keep-alive
            # connections close as their idle task sees ``terminated``.
            server_nursery.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
