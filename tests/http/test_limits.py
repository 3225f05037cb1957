"""Early answers end their connection cleanly, one address cannot hold every
connection, and the limits are read from ``plugins/http.yaml``."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from core.plugin_api import PluginConfigError
from tests.http.conftest import RawConn, alive, http_server

HEAD = (b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n")
BAD_AUTH = b"Authorization: Basic bW94QGxvY2FsaG9zdDp3cm9uZw==\r\n"  # mox@localhost:wrong
NEXT = b"GET /webapi/v0/ HTTP/1.1\r\nHost: localhost\r\n\r\n"


@pytest.mark.parametrize("auth", [b"", BAD_AUTH], ids=["no credentials", "wrong password"])
async def test_answer_before_the_body_closes_the_connection(tmp_path: Path, auth: bytes) -> None:
    """The 401 comes before the body is read; the body arriving afterwards is
    not taken for a request, and the connection ends instead of hanging."""
    async with http_server(tmp_path) as srv:
        conn = await RawConn.open(srv.ip)
        with trio.fail_after(15):
            await conn.send(HEAD + auth + b"\r\n")
            answer = await conn.answer()
            assert answer is not None and answer.status == 401
            assert answer.header(b"connection") == b"close"
            await trio.sleep(0.3)  # The body comes late, with a next request behind it.
            await conn.send(b"request=%7B%7D" + NEXT)
            assert await conn.rest_until_closed() == b""
        conn.close()
        await alive(srv.ip)


async def test_answer_after_the_body_keeps_the_connection(tmp_path: Path) -> None:
    async with http_server(tmp_path) as srv:
        conn = await RawConn.open(srv.ip)
        with trio.fail_after(15):
            await conn.send(HEAD + BAD_AUTH + b"\r\nrequest=%7B%7D")
            await trio.sleep(0.3)
            first = await conn.answer()
            assert first is not None and first.status == 401
            await conn.send(NEXT)
            second = await conn.answer()
            assert second is not None and second.status == 200
        conn.close()


async def test_connections_per_ip_are_capped(tmp_path: Path) -> None:
    async with http_server(tmp_path, "MaxConnectionsPerIP: 3\n") as srv:
        held = [await RawConn.open(srv.ip, source="127.0.0.9") for _ in range(3)]
        with trio.fail_after(15):
            # Each held connection is accepted (it is answered).
            for conn in held:
                await conn.send(NEXT)
                answer = await conn.answer()
                assert answer is not None and answer.status == 200
            extra = await RawConn.open(srv.ip, source="127.0.0.9")
            answer = await extra.answer()
            assert answer is not None
            assert answer.status_line == b"HTTP/1.1 429 Too Many Requests"
            assert await extra.rest_until_closed() == b""
            extra.close()
            # Another address is not affected.
            await alive(srv.ip)
            # A freed slot can be used again.
            held.pop().close()
            for _ in range(50):
                again = await RawConn.open(srv.ip, source="127.0.0.9")
                await again.send(NEXT)
                answer = await again.answer()
                again.close()
                assert answer is not None
                if answer.status == 200:
                    break
                await trio.sleep(0.05)
            assert answer.status == 200
        for conn in held:
            conn.close()


@pytest.mark.parametrize("text", ["MaxConnectionsPerIP: 0\n", "RequestTimeout: soon\n",
                                  "IdleTimeout: -1\n", "Nonsense: 1\n"])
async def test_bad_http_yaml_stops_the_start(tmp_path: Path, text: str) -> None:
    with pytest.raises(BaseExceptionGroup) as info:
        async with http_server(tmp_path, text):
            pass
    assert info.group_contains(PluginConfigError, match="^http.yaml: ")


async def test_idle_keep_alive_connection_closed_after_idle_timeout(tmp_path: Path) -> None:
    async with http_server(tmp_path, "IdleTimeout: 1\n") as srv:
        conn = await RawConn.open(srv.ip)
        # A bound against hanging; the idle timeout is 1 s (mox's default is 65 s).
        with trio.fail_after(15):
            await conn.send(NEXT)
            answer = await conn.answer()
            assert answer is not None and answer.status == 200
            assert answer.header(b"connection") is None  # Kept alive...
            assert await conn.rest_until_closed() == b""  # ...until idle too long.
        conn.close()
