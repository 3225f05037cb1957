"""HTTP/1.1 connections served by moxtrio itself: h11 for the protocol, an ASGI app behind it.

Applications call the webapi all day over keep-alive HTTP/1.1 connections,
and hypercorn's general machinery (a task and a queue per request, an event
object per protocol step, a separate reader task) cost about a quarter of a
Send's CPU. Here one task runs the whole connection: it parses a request
with h11, calls the app in that same task, and reads the request body only
when the app asks for it (``receive()``), so a handler that reads slowly
slows the client down instead of buffering its upload. The status line,
header block and a body given in one piece go out in one write.

The behaviour towards clients is the one the hypercorn-based server had (its
tests are the same): standard reason phrases, our ``Server`` and a ``Date``
header, ``Connection: close`` on an answer given before the request body was
read, ``100 Continue`` when the app reads the body of a request that waits
for it, ``408`` for a request that does not arrive within the request
deadline, ``400`` for a request h11 cannot parse (mox's Go server answers
these with 400 too), websocket upgrades refused with ``400``, a lingering
close so a client still sending its body reads the answer instead of a
reset. HTTP/2 (TLS with ALPN ``h2``) stays with hypercorn (:mod:`core.http2`).

Requests are served to the app without ASGI lifespan events: no moxtrio
service uses them, and a Quart app then starts on its first request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from email.utils import formatdate
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

import h11
import trio

log = logging.getLogger("moxtrio.http")

SERVER_NAME = b"moxtrio"
MAX_RECV = 64 * 1024
# The longest request line plus header block accepted (hypercorn's and
# h11's default); a longer one is answered 431.
MAX_HEAD_BYTES = 16 * 1024
# A closing connection drops what the client still sends for this long, up
# to this many bytes, before it closes (see :meth:`H1Connection._close`).
LINGER_SECONDS = 2.0
LINGER_BYTES = 1024 * 1024
# A TLS close (close_notify) may block on a full send buffer: bounded.
CLOSE_TIMEOUT = 2.0
# Bytes of a pipelined next request read while waiting for the client to
# hang up during a request; beyond them the socket is not read until the
# current request is answered.
PIPELINE_BUFFER = 64 * 1024

_PHRASES = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}
_DISCONNECT = {"type": "http.disconnect"}
_NO_WEBSOCKET = b"400 - websocket not supported\n"


def plain_answer(status: HTTPStatus, text: str) -> bytes:
    """A complete answer that ends the connection, for when no request was parsed."""
    body = f"{status.value} - {text}\n".encode()
    return (f"HTTP/1.1 {status.value} {status.phrase}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n").encode() \
        + b"server: " + SERVER_NAME + b"\r\n\r\n" + body


_TIMED_OUT = plain_answer(HTTPStatus.REQUEST_TIMEOUT, "request timeout")


class _DateHeader:
    """The ``Date`` header value, formatted once a second rather than per answer."""

    second = -1
    value = b""

    @classmethod
    def now(cls) -> bytes:
        second = int(time.time())
        if second != cls.second:
            cls.value = formatdate(second, usegmt=True).encode("ascii")
            cls.second = second
        return cls.value


def _server_headers() -> list[tuple[bytes, bytes]]:
    return [(b"date", _DateHeader.now()), (b"server", SERVER_NAME)]


class Shared:
    """What all connections of one HTTP listener share: limits and the shutdown state."""

    def __init__(self, request_timeout: float, idle_timeout: float) -> None:
        self.request_timeout = request_timeout
        self.idle_timeout = idle_timeout
        self.terminated = False
        # Connections waiting for a next request, woken to close at shutdown.
        self.idle_scopes: set[trio.CancelScope] = set()

    def terminate(self) -> None:
        """Stop keeping connections alive; idle ones close now, busy ones after their answer."""
        self.terminated = True
        for scope in list(self.idle_scopes):
            scope.cancel()


def _is_websocket_upgrade(headers: list[tuple[bytes, bytes]]) -> bool:
    upgrade = connection = b""
    for name, value in headers:
        if name == b"upgrade":
            upgrade = value.strip().lower()
        elif name == b"connection":
            connection = value.lower()
    return upgrade == b"websocket" and b"upgrade" in [t.strip() for t in connection.split(b",")]


def _suppress_body(method: bytes, status: int) -> bool:
    return method == b"HEAD" or 100 <= status < 200 or status in (204, 304)


class H1Connection:
    """One HTTP/1.1 connection: requests in turn, each answered by ``app`` in this task."""

    def __init__(self, app: Callable[..., Awaitable[None]], stream: trio.abc.Stream, shared: Shared, *,
                 tls: bool, client: tuple[str, int] | None, server: tuple[str, int] | None) -> None:
        self.app = app
        self.stream = stream
        self.shared = shared
        self.tls = tls
        self.scheme = "https" if tls else "http"
        self.client = client
        self.server = server
        self.conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        self._eof = False  # the client ended its side
        self._dead = False  # nothing more can be sent or received
        self._request_deadline = 0.0
        self._sending_100: trio.Event | None = None
        self._reset_request()

    def _reset_request(self) -> None:
        self._method = b""
        self._status = 0
        self._headers: list[tuple[bytes, bytes]] = []
        self._started = False  # http.response.start given by the app
        self._head_sent = False
        self._done = False  # the whole answer was sent
        self._body_given = False  # the app was told the body is complete
        self._disconnected = False
        self._pending: list[dict[str, Any]] = []

    # -- the connection's life -------------------------------------------------

    async def run(self) -> None:
        try:
            while not self._dead:
                request = await self._next_request()
                if request is None or not await self._serve(request):
                    break
                self.conn.start_next_cycle()
                self._reset_request()
        finally:
            await self._close()

    async def _receive_bytes(self, deadline: float) -> bytes | None:
        """Up to ``MAX_RECV`` bytes, ``b""`` at the client's end, None at ``deadline``."""
        if self._eof:
            return b""
        with trio.CancelScope(deadline=deadline):
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            if not data:
                self._eof = True
            return bytes(data)
        return None

    async def _idle_wait(self) -> bytes | None:
        """The first bytes of a next request, or None when the connection should close."""
        shared = self.shared
        if shared.terminated:
            return None
        with trio.CancelScope(deadline=trio.current_time() + shared.idle_timeout) as scope:
            shared.idle_scopes.add(scope)
            try:
                data = await self.stream.receive_some(MAX_RECV)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                data = b""
            finally:
                shared.idle_scopes.discard(scope)
            if not data:
                self._eof = True
            return bytes(data)
        return None

    async def _next_request(self) -> h11.Request | None:
        """The next request's head, or None when the connection is done (answered if need be)."""
        conn = self.conn
        started: float | None = trio.current_time() if conn.trailing_data[0] else None
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as error:
                if conn.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    # h11 hints 501 for a transfer coding it does not know and
                    # 505 for a version it does not speak: the client's doing.
                    hint = error.error_status_hint
                    await self._error_answer(400 if hint >= 500 else hint)
                return None
            if event is h11.NEED_DATA:
                if started is None:
                    data = await self._idle_wait()
                    started = trio.current_time()
                else:
                    data = await self._receive_bytes(started + self.shared.request_timeout)
                if data is None:
                    if started is not None and conn.trailing_data[0]:
                        self._timed_out()
                        await self._send_raw(_TIMED_OUT)
                    return None
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                self._request_deadline = (started if started is not None else trio.current_time()) \
                    + self.shared.request_timeout
                return event
            return None  # ConnectionClosed (or PAUSED after a protocol switch)

    def _timed_out(self) -> None:
        log.info("http %s: request not received within %gs, closing",
                 fmt_peer(self.client), self.shared.request_timeout)

    # -- one request -----------------------------------------------------------

    async def _serve(self, request: h11.Request) -> bool:
        """Answer ``request``; whether the connection may carry another."""
        headers = list(request.headers)
        if request.http_version not in (b"1.1", b"1.0"):
            await self._error_answer(400)
            return False
        if _is_websocket_upgrade(headers):
            await self._refuse_websocket()
            return False
        target = request.target
        path, _, query = target.partition(b"?")
        self._method = request.method
        scope = {
            "type": "http",
            "http_version": request.http_version.decode(),
            "asgi": {"spec_version": "2.1", "version": "3.0"},
            "method": request.method.decode("ascii").upper(),
            "scheme": self.scheme,
            "path": _unquote(path),
            "raw_path": path,
            "query_string": query,
            "root_path": "",
            "headers": headers,
            "client": self.client,
            "server": self.server,
            "state": {},
            "extensions": {},
        }
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:  # the app's error ends this request and connection only
            log.error("http %s: error answering %s %s: %r", fmt_peer(self.client),
                      scope["method"], target.decode("ascii", "replace"), exc, exc_info=exc)
            if not self._head_sent and not self._dead:
                await self._error_answer(500)
            return False
        if not self._done:
            if not self._head_sent and not self._dead:
                await self._error_answer(500)
            return False
        if self._dead or self.shared.terminated:
            return False
        conn = self.conn
        if conn.their_state is h11.SEND_BODY:
            return False  # answered early, with Connection: close
        return conn.our_state is h11.DONE and conn.their_state is h11.DONE

    async def _refuse_websocket(self) -> None:
        # No moxtrio route serves websockets.
        await self._send_events(
            h11.Response(status_code=400, reason=b"Bad Request", headers=[
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(_NO_WEBSOCKET)).encode()),
                (b"connection", b"close"), *_server_headers()]),
            h11.Data(data=_NO_WEBSOCKET), h11.EndOfMessage())

    # -- ASGI receive ----------------------------------------------------------

    async def _receive(self) -> dict[str, Any]:
        if self._pending:
            return self._pending.pop(0)
        if self._disconnected or self._dead:
            return _DISCONNECT
        conn = self.conn
        if conn.their_state is h11.SEND_BODY:
            return await self._receive_body()
        if not self._body_given:
            self._body_given = True
            return {"type": "http.request", "body": b"", "more_body": False}
        return await self._wait_for_hang_up()

    async def _receive_body(self) -> dict[str, Any]:
        conn = self.conn
        if conn.they_are_waiting_for_100_continue and not self._head_sent:
            await self._send_100_continue()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as error:
                # A broken body (bad chunk framing, or the client closed
                # before its end): answered if nothing was said yet.
                log.debug("http %s: bad request body: %s", fmt_peer(self.client), error)
                self._disconnected = True
                if not self._head_sent and not self._eof and not self._dead:
                    hint = error.error_status_hint
                    await self._error_answer(400 if hint >= 500 else hint)
                self._dead = True
                return _DISCONNECT
            if event is h11.NEED_DATA:
                data = await self._receive_bytes(self._request_deadline)
                if data is None:
                    self._timed_out()
                    self._disconnected = True
                    if not self._head_sent and not self._dead:
                        await self._error_answer(408)
                    self._dead = True
                    return _DISCONNECT
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Data):
                chunk = bytes(event.data)
                more = self._next_buffered_is_not_the_end()
                return {"type": "http.request", "body": chunk, "more_body": more}
            if isinstance(event, h11.EndOfMessage):
                self._body_given = True
                return {"type": "http.request", "body": b"", "more_body": False}
            self._dead = True
            return _DISCONNECT

    def _next_buffered_is_not_the_end(self) -> bool:
        """After a body chunk: whether more follows (the end, if buffered, is taken now)."""
        conn = self.conn
        if conn.their_state is not h11.SEND_BODY:
            return False
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return True  # the next receive() reports it
        if isinstance(event, h11.EndOfMessage):
            self._body_given = True
            return False
        if isinstance(event, h11.Data):
            self._pending.append({"type": "http.request", "body": bytes(event.data), "more_body": True})
        return True

    async def _wait_for_hang_up(self) -> dict[str, Any]:
        """After the body: ``http.disconnect`` once the client goes away (Quart listens for it)."""
        while len(self.conn.trailing_data[0]) < PIPELINE_BUFFER and not self._eof:
            data = await self._receive_bytes(float("inf"))
            if data:
                self.conn.receive_data(data)
        if self._eof:
            self._disconnected = True
            return _DISCONNECT
        await trio.sleep_forever()
        raise AssertionError("unreachable")

    async def _send_100_continue(self) -> None:
        self._sending_100 = trio.Event()
        try:
            await self._send_events(h11.InformationalResponse(
                status_code=100, reason=b"Continue", headers=_server_headers()))
        finally:
            self._sending_100.set()
            self._sending_100 = None

    # -- ASGI send ---------------------------------------------------------------

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            if self._started:
                raise RuntimeError("http.response.start sent twice")
            self._started = True
            self._status = int(message["status"])
            headers = []
            for name, value in message.get("headers", ()):
                if name[:1] == b":":
                    raise ValueError("pseudo headers are not valid in HTTP/1.1")
                headers.append((bytes(name).strip(), bytes(value).strip()))
            self._headers = headers
            return
        if kind != "http.response.body":
            return  # push, early hints, trailers: HTTP/2 only
        if not self._started or self._done:
            raise RuntimeError("http.response.body outside a response")
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if self._dead:
            self._done = not more
            return
        events: list[Any] = []
        if not self._head_sent:
            events.append(self._response_head())
            self._head_sent = True
        if body and not _suppress_body(self._method, self._status):
            events.append(h11.Data(data=body))
        if not more:
            events.append(h11.EndOfMessage())
            self._done = True
        if self._sending_100 is not None:
            await self._sending_100.wait()
        await self._send_events(*events)

    def _response_head(self) -> h11.Response:
        headers = self._headers
        headers.extend(_server_headers())
        if self.conn.their_state is h11.SEND_BODY and not self._body_buffered_whole():
            # Answered before the request body was read (an early 401 or
            # 429): the rest of the body must not be taken for a request.
            if not any(name.lower() == b"connection" for name, _ in headers):
                headers.append((b"connection", b"close"))
        return h11.Response(status_code=self._status, headers=headers,
                            reason=_PHRASES.get(self._status, b""))

    def _body_buffered_whole(self) -> bool:
        """Whether the unread rest of the request body has arrived already (then it is
        set aside for the app, and the connection may stay open)."""
        conn = self.conn
        pending: list[dict[str, Any]] = []
        while conn.their_state is h11.SEND_BODY:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError:
                return False
            if isinstance(event, h11.Data):
                pending.append({"type": "http.request", "body": bytes(event.data), "more_body": True})
            elif isinstance(event, h11.EndOfMessage):
                pending.append({"type": "http.request", "body": b"", "more_body": False})
                self._body_given = True
            else:
                break
        self._pending.extend(pending)
        return conn.their_state is not h11.SEND_BODY

    # -- writing -----------------------------------------------------------------

    async def _send_events(self, *events: Any) -> None:
        try:
            data = b"".join([self.conn.send(event) or b"" for event in events])
        except h11.LocalProtocolError as exc:
            # The app's answer cannot be said (a bad header, a body longer
            # than its Content-Length): nothing more can be said either.
            log.warning("http %s: dropping answer: %s", fmt_peer(self.client), exc)
            self._dead = True
            return
        await self._send_raw(data)

    async def _send_raw(self, data: bytes) -> None:
        if self._dead:
            return
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            self._dead = True
            self._disconnected = True

    async def _error_answer(self, status: int) -> None:
        """An empty answer that ends the connection (hypercorn's error answer, as before)."""
        await self._send_events(
            h11.Response(status_code=status, reason=_PHRASES.get(status, b""), headers=[
                (b"content-length", b"0"), (b"connection", b"close"), *_server_headers()]),
            h11.EndOfMessage())
        self._dead = True

    async def _close(self) -> None:
        """End the connection. On plain TCP, our side ends first and what the client
        still sends is read and dropped for a moment: closing a socket with unread
        data makes the kernel send a reset, and a client still sending its body
        would lose the answer it had not read yet."""
        stream = self.stream
        if self.tls:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + CLOSE_TIMEOUT
                try:
                    await stream.aclose()
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            if scope.cancelled_caught:
                await trio.aclose_forcefully(stream)
            return
        if not self._eof:
            with trio.CancelScope(shield=True) as scope:
                scope.deadline = trio.current_time() + LINGER_SECONDS
                try:
                    await stream.send_eof()  # type: ignore[attr-defined]
                    drained = 0
                    while drained <= LINGER_BYTES:
                        data = await stream.receive_some(MAX_RECV)
                        if not data:
                            break
                        drained += len(data)
                except (trio.BrokenResourceError, trio.ClosedResourceError, trio.BusyResourceError):
                    pass
        await trio.aclose_forcefully(stream)


def _unquote(path: bytes) -> str:
    return unquote(path.decode("ascii")) if b"%" in path else path.decode("ascii")


def host_port(address: Any) -> tuple[str, int] | None:
    """(host, port) of a socket address, None for a family without them (a Unix socket)."""
    return (str(address[0]), int(address[1])) if isinstance(address, tuple) else None


def fmt_peer(peer: tuple[str, int] | None) -> str:
    """A peer for log lines: ``host:port``, ``[v6]:port``, or ``?``."""
    if not peer:
        return "?"
    host, port = peer
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
