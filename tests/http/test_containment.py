"""Whatever one client sends, the server answers it (or closes that connection)
and keeps serving everyone else: no request shape may stop the process, none
may end in a 5xx, and none may hold a connection open forever."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest
import trio

from tests.http.conftest import RawConn, alive, http_server, request

WS_UPGRADE = (
    b"GET /webapi/ HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)
FORM = b"Content-Type: application/x-www-form-urlencoded\r\n"
# Shapes that stopped the server, each followed by a normal request on a new
# connection to prove it still runs.
CRASHERS = {
    "websocket upgrade plus one byte": WS_UPGRADE + b"X",
    "websocket upgrade": WS_UPGRADE,
    "bytes after the declared body": b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n" + FORM
    + b"Content-Length: 14\r\n\r\nrequest=%7B%7DXXXXX",
    "chunked with a body that is not chunked": b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n"
    + FORM + b"Transfer-Encoding: chunked\r\n\r\nrequest=%7B%7D\r\n",
    "unauthenticated MessageGet with 5 extra bytes": b"POST /webapi/v0/MessageGet HTTP/1.1\r\n"
    b"Host: localhost\r\n" + FORM + b"Content-Length: 14\r\n\r\nrequest=%7B%7D12345",
}


@pytest.mark.parametrize("name", sorted(CRASHERS))
async def test_request_shapes_that_stopped_the_server(tmp_path: Path, name: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with http_server(tmp_path) as srv:
        for _ in range(8):
            conn = await RawConn.open(srv.ip)
            with trio.fail_after(10):
                await conn.send(CRASHERS[name])
                answer = await conn.answer()
                assert answer is not None
                assert 400 <= answer.status < 500, answer
                # Then the client goes away mid-stream; the server must not mind.
            conn.close()
            await trio.sleep(0.05)
        await alive(srv.ip)
    assert "Traceback" not in caplog.text
    assert "connection ended by error" not in caplog.text


async def test_websocket_upgrade_refused_with_400(tmp_path: Path) -> None:
    async with http_server(tmp_path) as srv:
        with trio.fail_after(10):
            answer = await request(srv.ip, WS_UPGRADE + b"X")
        assert answer is not None
        assert answer.status_line == b"HTTP/1.1 400 Bad Request"
        assert answer.header(b"connection") == b"close"
        assert answer.body == b"400 - websocket not supported\n"


async def test_lone_surrogate_field_name_is_a_400(tmp_path: Path) -> None:
    async with http_server(tmp_path) as srv, httpx.AsyncClient(timeout=20) as http:
        r = await http.post(f"http://{srv.ip}:1080/webapi/v0/MessageGet",
                            data={"request": '{"\\ud800":1}'}, auth=("mox@localhost", "moxmoxmox"))
        assert r.status_code == 400
        assert r.json() == {"Code": "protocol",
                            "Message": 'parsing request: json: unknown field "\ufffd"'}
        assert json.loads(r.content.decode("utf-8"))["Code"] == "protocol"


INCOMPLETE = {
    "body shorter than Content-Length": b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n"
    + FORM + b"Authorization: Basic bW94QGxvY2FsaG9zdDptb3htb3htb3g=\r\nContent-Length: 100\r\n\r\nrequest=",
    "chunked body that never ends": b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n"
    + FORM + b"Authorization: Basic bW94QGxvY2FsaG9zdDptb3htb3htb3g=\r\nTransfer-Encoding: chunked\r\n"
    b"\r\n5\r\nreq",
    "headers that never end": b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\nX-A: b",
}


@pytest.mark.parametrize("name", sorted(INCOMPLETE))
async def test_incomplete_request_answered_408_at_the_deadline(tmp_path: Path, name: str) -> None:
    async with http_server(tmp_path, "RequestTimeout: 1\n") as srv:
        conn = await RawConn.open(srv.ip)
        # A bound against hanging, not a timing assertion: the deadline is 1 s.
        with trio.fail_after(15):
            await conn.send(INCOMPLETE[name])
            answer = await conn.answer()
            assert answer is not None
            assert answer.status_line == b"HTTP/1.1 408 Request Timeout"
            assert answer.header(b"connection") == b"close"
            assert await conn.rest_until_closed() == b""
        conn.close()
        await alive(srv.ip)


async def test_slow_but_steady_request_within_the_deadline_is_served(tmp_path: Path) -> None:
    """A body that arrives in pieces, complete before the deadline, is served."""
    async with http_server(tmp_path, "RequestTimeout: 30\n") as srv:
        conn = await RawConn.open(srv.ip)
        head = (b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n" + FORM
                + b"Authorization: Basic bW94QGxvY2FsaG9zdDptb3htb3htb3g=\r\nContent-Length: 30\r\n\r\n")
        with trio.fail_after(15):
            await conn.send(head)
            for piece in (b"request=", b"%7B%22Msg", b"ID%22%3A99%7D"):
                await trio.sleep(0.2)
                await conn.send(piece)
            answer = await conn.answer()
        assert answer is not None and answer.status == 400
        assert json.loads(answer.body)["Code"] == "messageNotFound"
        conn.close()


@pytest.mark.parametrize("data", [
    b"POST /webapi/v0/Send HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip\r\n\r\n",
    b"GET /webapi/v0/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: -1\r\n\r\n",
], ids=["unknown transfer coding", "negative length"])
async def test_protocol_errors_are_answered_4xx(tmp_path: Path, data: bytes) -> None:
    """h11 suggests 501 for an unknown transfer coding; a client's mistake is a 4xx."""
    async with http_server(tmp_path) as srv:
        with trio.fail_after(10):
            answer = await request(srv.ip, data)
        assert answer is not None
        assert answer.status_line == b"HTTP/1.1 400 Bad Request"


async def test_bytes_after_a_closing_request_do_not_cut_the_answer(tmp_path: Path) -> None:
    """A request that ends its connection (Connection: close) followed by bytes
    that are no request: the application's answer arrives whole, then the
    connection closes (the bytes are dropped, not taken for a request)."""
    basic = b"Authorization: Basic bW94QGxvY2FsaG9zdDptb3htb3htb3g=\r\n"
    data = (b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n" + basic
            + FORM + b"Content-Length: 27\r\n\r\nrequest=%7B%22MsgID%22:9%7DXXXXX")
    async with http_server(tmp_path) as srv:
        for _ in range(4):
            conn = await RawConn.open(srv.ip)
            try:
                with trio.fail_after(10):
                    await conn.send(data)
                    answer = await conn.answer()
                    assert answer is not None and answer.status == 400, answer
                    assert json.loads(answer.body)["Code"] == "messageNotFound"
                    await conn.rest_until_closed()
            finally:
                conn.close()
        await alive(srv.ip)
