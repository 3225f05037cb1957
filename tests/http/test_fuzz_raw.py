"""Raw-socket fuzzing of the HTTP layer (hypothesis, seeded, bounded).

Random and mutated HTTP/1.x requests, aimed mostly at the webapi, are sent in
concurrent batches over plain sockets to one running server. Whatever the
bytes, the server must: keep running, never answer 5xx, answer or close every
connection within its request deadline, and log no traceback. Shapes that once
stopped the server are sent first, on every run.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import trio
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from tests.http.conftest import HTTP_PORT, alive, http_server
from tests.http.test_containment import CRASHERS, INCOMPLETE

REQUEST_TIMEOUT = 1  # seconds, in http.yaml: incomplete requests end quickly
IDLE_TIMEOUT = 2
# Every connection must see an answer or a close by then (deadline plus slack
# for a loaded machine); this bounds a hang, it does not time the server.
ANSWER_BOUND = 20.0
BATCH = 16
EXAMPLES = 20

GOOD_AUTH = "Basic " + base64.b64encode(b"mox@localhost:moxmoxmox").decode()
METHODS = ["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PRI", "CONNECT", "G\x00T", "post"]
TARGETS = ["/webapi/v0/Send", "/webapi/v0/MessageGet", "/webapi/v0/MessageRawGet",
           "/webapi/v0/SuppressionList", "/webapi/", "/webapi/v0/", "/webapi/openapi.json",
           "/", "*", "/nope", "http://localhost/webapi/v0/Send", "/webapi/v0/Send?x=%ff",
           "/webapi/v0/%2e%2e/", "//", "/webapi/v0/Send#frag"]
VERSIONS = ["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.2", "HTTP/9", "", "http/1.1"]
HEADER_CHOICES = {
    "Host": ["localhost", "", "a b", "localhost:1080", "[::1]", "x" * 300],
    "Content-Type": ["application/x-www-form-urlencoded", "multipart/form-data; boundary=b",
                     "multipart/form-data", "text/plain", "application/json", "\x01"],
    "Authorization": [GOOD_AUTH, "Basic bW94QGxvY2FsaG9zdDp3cm9uZw==", "Basic !!!", "Bearer x",
                      "Basic " + base64.b64encode("møx@localhost:\udc80".encode("utf-8", "surrogatepass")).decode()],
    "Transfer-Encoding": ["chunked", "gzip", "chunked, chunked", "identity", "gzip, chunked"],
    "Connection": ["close", "keep-alive", "Upgrade", "upgrade, keep-alive", "HTTP2-Settings"],
    "Upgrade": ["websocket", "h2c", "WebSocket", "tls/1.2"],
    "Expect": ["100-continue", "200-ok"],
    "Sec-WebSocket-Key": ["dGhlIHNhbXBsZSBub25jZQ==", ""],
    "Sec-WebSocket-Version": ["13", "8"],
    "HTTP2-Settings": ["AAMAAABkAAQAAP__", "!!"],
    "X-Forwarded-For": ["1.2.3.4", "garbage", "::1, 10.0.0.1"],
    "Accept-Encoding": ["gzip", "br, deflate"],
    "Range": ["bytes=0-1", "bytes=-5", "bytes=x"],
}
JSON_VALUES = [{}, {"MsgID": 1}, {"MsgID": -1}, {"MsgID": "1"}, {"\ud800": 1}, {"To": []},
               {"To": [{"Address": "mox@localhost"}], "Text": "hi"}, [], None, 1e999, "x"]


def _json(value: object) -> str:
    try:
        return json.dumps(value)
    except ValueError:
        return "{"


@st.composite
def bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["form", "multipart", "raw", "empty"]))
    if kind == "empty":
        return b""
    if kind == "raw":
        return draw(st.binary(max_size=200))
    value = draw(st.one_of(st.sampled_from(JSON_VALUES).map(_json), st.text(max_size=40)))
    raw = value.encode("utf-8", "surrogatepass")
    if kind == "form":
        from urllib.parse import quote_from_bytes
        return b"request=" + quote_from_bytes(raw).encode()
    return (b"--b\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n" + raw
            + b"\r\n--b--\r\n")


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.one_of(st.sampled_from(METHODS), st.text(max_size=6)))
    target = draw(st.one_of(st.sampled_from(TARGETS), st.text(max_size=20)))
    version = draw(st.sampled_from(VERSIONS))
    body = draw(bodies())
    names = draw(st.lists(st.sampled_from(sorted(HEADER_CHOICES)), max_size=6, unique=True))
    headers = [(n, draw(st.sampled_from(HEADER_CHOICES[n]))) for n in names]
    length = draw(st.sampled_from(["right", "none", "short", "long", "negative", "huge", "double"]))
    if length == "right":
        headers.append(("Content-Length", str(len(body))))
    elif length == "short":
        headers.append(("Content-Length", str(max(0, len(body) - 5))))
    elif length == "long":
        headers.append(("Content-Length", str(len(body) + 7)))
    elif length == "negative":
        headers.append(("Content-Length", "-1"))
    elif length == "huge":
        headers.append(("Content-Length", "99999999999999999999"))
    elif length == "double":
        headers += [("Content-Length", str(len(body))), ("Content-Length", "3")]
    if any(n == "Transfer-Encoding" for n, _ in headers) and draw(st.booleans()):
        body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body) if body else b"0\r\n\r\n"
    if draw(st.booleans()):
        headers.append((draw(st.text(max_size=10)), draw(st.text(max_size=20))))
    head = f"{method} {target} {version}\r\n" + "".join(f"{n}: {v}\r\n" for n, v in headers) + "\r\n"
    data = head.encode("utf-8", "surrogatepass") + body
    data += draw(st.sampled_from([b"", b"X", b"12345", b"\r\n", b"GET / HTTP/1.1\r\n\r\n",
                                  b"GET /webapi/v0/ HTTP/1.1\r\nHost: localhost\r\n\r\n"]))
    # Byte-level mutations of the whole request.
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        how = draw(st.sampled_from(["flip", "cut", "insert", "crlf"]))
        if how == "flip":
            data = data[:at] + bytes([data[at] ^ draw(st.integers(1, 255))]) + data[at + 1:]
        elif how == "cut":
            data = data[:at]
        elif how == "insert":
            data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
        else:
            data = data[:at] + b"\r\n" + data[at:]
    return data or b"\r\n"


STATUS = re.compile(rb"(?:^|\r\n)HTTP/1\.[01] (\d{3})[ \r]")


def exchange(ip: str, data: bytes, half_close: bool) -> tuple[bytes, bool]:
    """Send ``data`` on a new connection; return what came back and whether the
    server ended the connection (EOF or reset) before the bound."""
    received = b""
    end = time.monotonic() + ANSWER_BOUND
    with socket.create_connection((ip, HTTP_PORT), timeout=ANSWER_BOUND) as sock:
        try:
            sock.sendall(data)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # The server may close early (an answer before the body).
        while time.monotonic() < end:
            # Once an answer has come, a quiet pause means the server waits
            # for a next request on a kept-alive connection: that is fine.
            sock.settimeout(0.5 if STATUS.search(received) else max(0.01, end - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                if STATUS.search(received):
                    return received, False
                continue
            except OSError:
                return received, True
            if not chunk:
                return received, True
            received += chunk
    return received, False


def check(ip: str, batch: list[tuple[bytes, bool]]) -> None:
    with ThreadPoolExecutor(len(batch)) as pool:
        results = list(pool.map(lambda item: exchange(ip, *item), batch))
    for (data, _), (received, closed) in zip(batch, results, strict=True):
        codes = [int(c) for c in STATUS.findall(received)]
        assert codes or closed or received, f"no answer and no close for {data!r}"
        assert all(c < 500 for c in codes), f"{codes} for {data!r}: {received[:300]!r}"


@pytest.mark.slow
async def test_fuzz_raw_http_requests(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    yaml = f"RequestTimeout: {REQUEST_TIMEOUT}\nIdleTimeout: {IDLE_TIMEOUT}\nMaxConnectionsPerIP: 1000\n"
    async with http_server(tmp_path, yaml) as srv:
        known = [(d, False) for d in [*CRASHERS.values(), *INCOMPLETE.values()]]
        known += [(d, True) for d in CRASHERS.values()]
        await trio.to_thread.run_sync(check, srv.ip, known)
        runs = 0

        @seed(20261204)
        # No shrinking: it could run for minutes; the failing batch is reported as is.
        @settings(max_examples=EXAMPLES, deadline=None, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(batch=st.lists(st.tuples(requests(), st.booleans()), min_size=BATCH, max_size=BATCH))
        def fuzz(batch: list[tuple[bytes, bool]]) -> None:
            nonlocal runs
            runs += 1
            check(srv.ip, batch)

        await trio.to_thread.run_sync(fuzz)
        assert runs == EXAMPLES
        await alive(srv.ip)
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info
                or "connection ended by error" in r.getMessage()]
    assert not problems, [r.getMessage() for r in problems]
    assert "Traceback" not in caplog.text
