"""HTTP/2 connections (TLS with ALPN ``h2``), served by hypercorn.

HTTP/1.1 is served by :mod:`core.http1`; a TLS client that negotiates
``h2`` is handed to hypercorn's HTTP/2 protocol here, after the handshake
:mod:`core.http_server` already did. This module (and hypercorn with h2 and
its dependencies) is imported on the first such connection only.

On top of hypercorn: a whole-request deadline (a connection with open
streams must keep sending: a body, window updates), our ``Server`` header,
and a close that cannot be cancelled half-way.
"""

from __future__ import annotations

import math
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.events import Closed, RawData, Updated
from hypercorn.protocol import ProtocolWrapper
from hypercorn.protocol.h2 import H2Protocol
from hypercorn.trio.task_group import TaskGroup
from hypercorn.trio.tcp_server import MAX_RECV, TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import parse_socket_addr, wrap_app

from core.http1 import CLOSE_TIMEOUT, SERVER_NAME


class ServerConfig(HypercornConfig):
    """hypercorn config with our Server header and request deadline."""

    request_timeout: float = 300.0

    def response_headers(self, protocol: str) -> list[tuple[bytes, bytes]]:
        headers = super().response_headers(protocol)
        return [h for h in headers if h[0] != b"server"] + [(b"server", SERVER_NAME)]


class H2Server:
    """What every HTTP/2 connection of one listener shares."""

    def __init__(self, app: Any, request_timeout: float, idle_timeout: float) -> None:
        config = ServerConfig()
        config.accesslog = None
        config.keep_alive_timeout = idle_timeout
        config.request_timeout = request_timeout
        config.graceful_timeout = 3.0
        self.config = config
        self.app = wrap_app(app, config.wsgi_max_body_size, "asgi")
        self.context = WorkerContext(None)

    async def serve(self, stream: trio.SSLStream[Any]) -> None:
        """Serve one connection whose handshake chose ``h2``."""
        await SafeTCPServer(self.app, self.config, self.context, ConnectionState({}), stream).run()

    async def terminate(self) -> None:
        """Shutdown: connections finish their streams and close."""
        await self.context.terminated.set()


class SafeTCPServer(TCPServer):
    """hypercorn's connection server with a whole-request deadline."""

    config: ServerConfig

    async def run(self) -> None:
        # As hypercorn's, for a TLS stream whose handshake is done.
        socket = self.stream.transport_stream.socket
        try:
            client = parse_socket_addr(socket.family, socket.getpeername())
            server = parse_socket_addr(socket.family, socket.getsockname())
            async with TaskGroup() as task_group:
                self._task_group = task_group
                self.protocol = ProtocolWrapper(
                    self.app, self.config, self.context, task_group,
                    ConnectionState(self.state), True, client, server, self.protocol_send, "h2",
                )
                await self.protocol.initiate()
                await self.idle_task.restart(self._task_group, self._idle_timeout)
                await self._read_data()
                # The client is gone or done: the keep-alive timer must not
                # hold the connection open; an app task still answering is
                # waited for.
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

    async def protocol_send(self, event: Any) -> None:
        if isinstance(event, Updated):
            # Sent from the app's task, which quart cancels once the answer
            # is out: unshielded, the keep-alive idle timer is cancelled as
            # it starts and an idle connection stays open for good.
            with trio.CancelScope(shield=True):
                await super().protocol_send(event)
            return
        await super().protocol_send(event)

    async def _read_data(self) -> None:
        while True:
            protocol = self.protocol.protocol
            deadline = math.inf
            if isinstance(protocol, H2Protocol) and protocol.streams:
                # HTTP/2 multiplexes requests: a connection with open
                # streams must keep sending (a body, window updates).
                deadline = trio.current_time() + self.config.request_timeout
            data: bytes | bytearray | None = None
            try:
                with trio.CancelScope(deadline=deadline):
                    data = await self.stream.receive_some(MAX_RECV)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            if data is None:
                break  # a stream stalled past the deadline: the connection ends
            await self.protocol.handle(RawData(bytes(data)))
            if data == b"":
                break
        await self.protocol.handle(Closed())
