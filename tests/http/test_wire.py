"""What HTTP clients see on the wire: status lines with reason phrases and our
own Server header (as mox's Go server sends reasons), and HTTP/2 over TLS."""

from __future__ import annotations

import base64
import json
import ssl
from pathlib import Path

import h2.config
import h2.connection
import h2.events
import httpx
import trio

from tests.http.conftest import HTTPS_PORT, RawConn, http_server

AUTH = ("mox@localhost", "moxmoxmox")
BASIC = b"Authorization: Basic " + base64.b64encode(b"mox@localhost:moxmoxmox") + b"\r\n"


async def _exchange(ip: str, data: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    conn = await RawConn.open(ip)
    try:
        with trio.fail_after(15):
            await conn.send(data)
            answer = await conn.answer()
    finally:
        conn.close()
    assert answer is not None
    return answer.status_line, answer.headers


async def test_status_lines_carry_reason_phrases(tmp_path: Path) -> None:
    form = b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 14\r\n"
    cases = [
        (b"GET /webapi/v0/ HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.1 200 OK"),
        (b"GET /webapi/ HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.1 303 See Other"),
        (b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n" + form
         + b"\r\nrequest=%7B%7D", b"HTTP/1.1 401 Unauthorized"),
        (b"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: localhost\r\n" + BASIC + form
         + b"\r\nrequest=%7B%7D", b"HTTP/1.1 400 Bad Request"),
        (b"GET /nosuchpath HTTP/1.1\r\nHost: localhost\r\n\r\n", b"HTTP/1.1 404 Not Found"),
        (b"POST /webapi/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
         b"HTTP/1.1 405 Method Not Allowed"),
        (b"GET / HTTP/1.1\r\n\r\n", b"HTTP/1.1 400 Bad Request"),  # No Host: h11 refuses.
    ]
    async with http_server(tmp_path) as srv:
        for data, expected in cases:
            status_line, headers = await _exchange(srv.ip, data)
            assert status_line == expected, data
            servers = [v for k, v in headers if k.lower() == b"server"]
            assert servers == [b"moxtrio"], (data, headers)


async def test_http2_over_tls_send_and_message_get(tmp_path: Path) -> None:
    async with http_server(tmp_path) as srv, httpx.AsyncClient(
            http2=True, verify=False, timeout=20) as http:
        base = f"https://{srv.ip}:{HTTPS_PORT}/webapi/v0/"
        send = {"To": [{"Address": "mox@localhost"}], "Subject": "over h2",
                "Text": "hello over HTTP/2"}
        r = await http.post(base + "Send", data={"request": json.dumps(send)}, auth=AUTH)
        assert r.http_version == "HTTP/2"
        assert r.status_code == 200, r.text
        assert r.headers["server"] == "moxtrio"
        message_id = r.json()["MessageID"]
        assert message_id
        # The local delivery lands in the Inbox; find it and fetch it over h2.
        found = None
        with trio.fail_after(15):
            while found is None:
                r = await http.post(base + "MessageGet", data={"request": json.dumps({"MsgID": 1})},
                                    auth=AUTH)
                assert r.http_version == "HTTP/2"
                if r.status_code == 200:
                    found = r.json()
                else:
                    assert r.json()["Code"] == "messageNotFound"
                    await trio.sleep(0.1)
        assert found["Message"]["Subject"] == "over h2"
        # Errors are answered over h2 too.
        r = await http.post(base + "MessageGet", data={"request": "{"}, auth=AUTH)
        assert r.http_version == "HTTP/2" and r.status_code == 400


async def test_http2_stalled_request_body_ends_at_the_deadline(tmp_path: Path) -> None:
    """An HTTP/2 stream whose body stops coming does not hold the connection forever."""
    async with http_server(tmp_path, "RequestTimeout: 1\n") as srv:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
        stream = trio.SSLStream(await trio.open_tcp_stream(srv.ip, HTTPS_PORT), ctx,
                                server_hostname="localhost")
        await stream.do_handshake()
        assert stream.selected_alpn_protocol() == "h2"
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, [(":method", "POST"), (":path", "/webapi/v0/MessageGet"),
                              (":scheme", "https"), (":authority", "localhost"),
                              ("content-type", "application/x-www-form-urlencoded"),
                              ("content-length", "100")])
        conn.send_data(1, b"request=%7B")
        await stream.send_all(conn.data_to_send())
        ended = False
        # A bound against hanging; the deadline is 1 s.
        with trio.fail_after(15):
            while not ended:
                try:
                    data = await stream.receive_some(65536)
                except trio.BrokenResourceError:
                    break
                if not data:
                    break
                for event in conn.receive_data(data):
                    ended = ended or isinstance(event, h2.events.ConnectionTerminated | h2.events.StreamReset)
        await trio.aclose_forcefully(stream)
