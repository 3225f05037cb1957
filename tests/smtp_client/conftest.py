"""Fixtures for the delivery client tests: DNS responder, aiosmtpd sink, and a
scripted raw SMTP peer (trio, in-process) for protocol corner cases the sink
can't produce (stalls, 421, broken replies)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.support.dnsresponder import dns_responder_factory
from tests.support.smtpsink import SMTPSink, open_smtp_sink


@pytest.fixture
def dns_responder() -> Iterator[Any]:
    with dns_responder_factory() as make:
        yield make


@pytest.fixture
def sink_factory(tmp_path: Path) -> Callable[..., Any]:
    """``async with sink_factory(**config) as sink:`` – one sink process per use."""
    counter = [0]

    def make(**kw: Any) -> Any:
        counter[0] += 1
        return open_smtp_sink(tmp_path / f"sink{counter[0]}", **kw)

    return make


@pytest.fixture
async def sink(tmp_path: Path) -> AsyncIterator[SMTPSink]:
    """A default sink: accepts everything, PIPELINING, no STARTTLS."""
    async with open_smtp_sink(tmp_path / "sink") as s:
        yield s


Script = Callable[["RawPeer"], Awaitable[None]]


class RawPeer:
    """One accepted connection of :func:`raw_server`, with line helpers."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.buf = b""
        self.received: list[bytes] = []

    async def send(self, line: str) -> None:
        await self.stream.send_all(line.encode() + b"\r\n")

    async def readline(self) -> bytes:
        while b"\n" not in self.buf:
            data = await self.stream.receive_some(65536)
            if not data:
                raise EOFError
            self.buf += data
        line, self.buf = self.buf.split(b"\n", 1)
        self.received.append(line + b"\n")
        return line.rstrip(b"\r")

    async def read_data(self) -> bytes:
        """Read DATA content up to the lone dot; returns it still stuffed."""
        out: list[bytes] = []
        while True:
            line = await self.readline()
            if line == b".":
                return b"\r\n".join(out) + b"\r\n"
            out.append(line)

    async def ehlo_session(self, extensions: list[str]) -> None:
        """Greeting + EHLO with the given extension lines."""
        await self.send("220 raw.example ESMTP")
        line = await self.readline()
        assert line.upper().startswith(b"EHLO ")
        lines = ["raw.example", *extensions]
        for i, text in enumerate(lines):
            sep = " " if i == len(lines) - 1 else "-"
            await self.send(f"250{sep}{text}")


@pytest.fixture
async def raw_server(nursery: trio.Nursery) -> Callable[[Script], Awaitable[int]]:
    """Start a loopback TCP server running ``script(peer)`` for each connection;
    returns its port. Scripts run under a 20 s bound so a test can't hang."""

    async def start(script: Script) -> int:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")

        async def handler(stream: trio.SocketStream) -> None:
            peer = RawPeer(stream)
            with trio.move_on_after(20):
                try:
                    await script(peer)
                except (EOFError, trio.BrokenResourceError, trio.ClosedResourceError):
                    pass
            await trio.aclose_forcefully(stream)

        nursery.start_soon(trio.serve_listeners, handler, listeners)
        return int(listeners[0].socket.getsockname()[1])

    return start
