"""A whole server per test, with optional ``plugins/http.yaml``, and a raw HTTP/1.1
client over trio sockets that reads exactly one answer (status line, headers,
Content-Length or chunked body) so tests see the bytes the server sends."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from core.runtime import Server
from tests.support.inproc import localserve_config_dir, running_server

HTTP_PORT = 1080
HTTPS_PORT = 1443


@dataclass
class HTTPServer:
    server: Server
    ip: str
    directory: Path


@asynccontextmanager
async def http_server(tmp_path: Path, http_yaml: str | None = None) -> AsyncIterator[HTTPServer]:
    directory, ip = localserve_config_dir(tmp_path)
    if http_yaml is not None:
        (directory / "plugins").mkdir(exist_ok=True)
        (directory / "plugins" / "http.yaml").write_text(http_yaml)
    async with running_server(directory) as server:
        yield HTTPServer(server, ip, directory)


@dataclass
class Answer:
    status_line: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @property
    def status(self) -> int:
        return int(self.status_line.split(b" ", 2)[1])

    def header(self, name: bytes) -> bytes | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


class RawConn:
    """One TCP connection speaking bytes; ``answer()`` parses one HTTP/1.1 answer."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self.sock = sock
        self.buf = b""

    @classmethod
    async def open(cls, ip: str, port: int = HTTP_PORT, source: str | None = None) -> RawConn:
        sock = trio.socket.socket()
        if source is not None:
            await sock.bind((source, 0))
        await sock.connect((ip, port))
        return cls(sock)

    async def send(self, data: bytes) -> None:
        await self.sock.send(data)

    async def _more(self) -> bool:
        data = await self.sock.recv(65536)
        self.buf += data
        return bool(data)

    async def answer(self) -> Answer | None:
        """The next answer, or None when the server closed without one."""
        while b"\r\n\r\n" not in self.buf:
            if not await self._more():
                assert self.buf == b"", self.buf
                return None
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        headers = [tuple(x.strip() for x in line.split(b":", 1)) for line in lines[1:]]
        answer = Answer(lines[0], headers, b"")  # type: ignore[arg-type]
        if (answer.header(b"transfer-encoding") or b"").lower() == b"chunked":
            while True:
                while b"\r\n" not in self.buf:
                    assert await self._more()
                size_line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(size_line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    assert await self._more()
                answer.body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    break
        else:
            length = int(answer.header(b"content-length") or b"0")
            while len(self.buf) < length:
                assert await self._more()
            answer.body, self.buf = self.buf[:length], self.buf[length:]
        return answer

    async def rest_until_closed(self) -> bytes:
        """What the server still sends before it ends the connection (EOF or reset)."""
        try:
            while await self._more():
                pass
        except ConnectionResetError:
            pass
        rest, self.buf = self.buf, b""
        return rest

    def close(self) -> None:
        self.sock.close()


async def request(ip: str, data: bytes, port: int = HTTP_PORT) -> Answer | None:
    conn = await RawConn.open(ip, port)
    try:
        await conn.send(data)
        return await conn.answer()
    finally:
        conn.close()


async def alive(ip: str) -> None:
    """The server still answers a plain request."""
    with trio.fail_after(10):
        a = await request(ip, b"GET /webapi/v0/ HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert a is not None and a.status == 200
