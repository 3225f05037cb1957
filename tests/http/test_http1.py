"""The HTTP/1.1 server layer (core.http1 behind core.http_server.serve) with a small
ASGI app over real loopback sockets: pipelining, request bodies (chunked, 100-continue,
read or not), HEAD, an app's error, and shutdown of idle and busy connections."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from typing import Any

import pytest
import trio

from core.http_server import ConnectionCounter, HTTPSettings, serve
from tests.http.conftest import RawConn
from tests.support.procs import unique_loopback_ip


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """``/echo`` answers the body it read; ``/early`` answers without reading it;
    ``/boom`` fails; ``/slow`` answers after a moment; anything else says its path."""
    path = scope["path"]
    if path == "/boom":
        raise RuntimeError("app failure")
    body = b""
    if path == "/echo":
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
    elif path == "/slow":
        await trio.sleep(0.5)
        body = b"slow done"
    elif path != "/early":
        body = f"{scope['method']} {path} {scope['query_string'].decode()}".encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@asynccontextmanager
async def http1_server(idle_timeout: float = 65.0) -> AsyncIterator[tuple[str, int, trio.Event]]:
    ip = unique_loopback_ip()
    shutdown = trio.Event()
    settings = HTTPSettings(idle_timeout=idle_timeout)
    async with trio.open_nursery() as nursery:
        [bind] = await nursery.start(partial(
            serve, app, ip, 0, None, settings, ConnectionCounter(100), shutdown_trigger=shutdown.wait))
        port = int(bind.rsplit(":", 1)[1])
        yield ip, port, shutdown
        shutdown.set()


async def test_pipelined_requests_are_answered_in_order_on_one_connection() -> None:
    async with http1_server() as (ip, port, _):
        conn = await RawConn.open(ip, port)
        with trio.fail_after(10):
            await conn.send(b"GET /one?a=1 HTTP/1.1\r\nHost: x\r\n\r\n"
                            b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello"
                            b"GET /three HTTP/1.1\r\nHost: x\r\n\r\n")
            answers = [await conn.answer() for _ in range(3)]
        conn.close()
    assert [a.body if a else None for a in answers] == [b"GET /one a=1", b"hello", b"GET /three "]
    first = answers[0]
    assert first is not None
    assert first.status_line == b"HTTP/1.1 200 OK"
    assert first.header(b"server") == b"moxtrio"
    assert (first.header(b"date") or b"").endswith(b" GMT")
    assert first.header(b"connection") is None


async def test_chunked_body_and_100_continue_reach_the_app() -> None:
    async with http1_server() as (ip, port, _):
        conn = await RawConn.open(ip, port)
        with trio.fail_after(10):
            await conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n")
            chunked = await conn.answer()
            await conn.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                            b"Expect: 100-continue\r\n\r\n")
            informational = await conn.answer()
            await conn.send(b"data")
            continued = await conn.answer()
        conn.close()
    assert chunked is not None and chunked.body == b"abcdefg"
    assert informational is not None and informational.status_line == b"HTTP/1.1 100 Continue"
    assert continued is not None and (continued.status, continued.body) == (200, b"data")


async def test_no_100_continue_for_an_answer_that_does_not_read_the_body() -> None:
    async with http1_server() as (ip, port, _):
        conn = await RawConn.open(ip, port)
        with trio.fail_after(10):
            await conn.send(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n"
                            b"Expect: 100-continue\r\n\r\n")
            answer = await conn.answer()
            rest = await conn.rest_until_closed()
        conn.close()
    assert answer is not None and answer.status == 200
    # The body never came: it must not be taken for a next request.
    assert answer.header(b"connection") == b"close"
    assert rest == b""


async def test_unread_body_that_already_arrived_keeps_the_connection() -> None:
    async with http1_server() as (ip, port, _):
        conn = await RawConn.open(ip, port)
        with trio.fail_after(10):
            await conn.send(b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody"
                            b"GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
            first, second = await conn.answer(), await conn.answer()
        conn.close()
    assert first is not None and first.header(b"connection") is None
    assert second is not None and second.body == b"GET /after "


async def test_head_answer_has_headers_and_no_body() -> None:
    async with http1_server() as (ip, port, _):
        conn = await RawConn.open(ip, port)
        with trio.fail_after(10):
            await conn.send(b"HEAD /page HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
            while b"GET /next" not in conn.buf:
                assert await conn._more()
        conn.close()
    head, _, rest = conn.buf.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"content-length: 11" in head.lower()  # len("HEAD /page ")
    # Right after the HEAD answer's header block comes the next answer.
    assert rest.startswith(b"HTTP/1.1 200 OK\r\n")
    assert rest.endswith(b"GET /next ")


async def test_app_error_is_a_500_and_the_server_serves_on(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="moxtrio.http")
    async with http1_server() as (ip, port, _):
        conn = await RawConn.open(ip, port)
        with trio.fail_after(10):
            await conn.send(b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = await conn.answer()
            rest = await conn.rest_until_closed()
            conn.close()
            conn = await RawConn.open(ip, port)
            await conn.send(b"GET /fine HTTP/1.1\r\nHost: x\r\n\r\n")
            fine = await conn.answer()
        conn.close()
    assert answer is not None and answer.status_line == b"HTTP/1.1 500 Internal Server Error"
    assert answer.header(b"connection") == b"close" and rest == b""
    assert fine is not None and fine.status == 200
    assert "app failure" in caplog.text


async def test_shutdown_closes_idle_connections_and_lets_busy_ones_finish() -> None:
    async with http1_server() as (ip, port, shutdown):
        idle = await RawConn.open(ip, port)
        busy = await RawConn.open(ip, port)
        with trio.fail_after(10):
            await idle.send(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
            assert (await idle.answer()) is not None
            await busy.send(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
            await trio.sleep(0.1)
            shutdown.set()
            assert await idle.rest_until_closed() == b""
            slow = await busy.answer()
            assert await busy.rest_until_closed() == b""
        idle.close()
        busy.close()
    assert slow is not None and slow.body == b"slow done"
