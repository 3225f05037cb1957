"""Which request bodies are read as forms, as Go's form parsing in mox decides."""

from __future__ import annotations

import base64
import json

import trio

from tests.webapi.conftest import AUTH, WebapiServer


async def test_non_form_body_is_not_parsed(srv: WebapiServer) -> None:
    """A urlencoded-looking body with another media type is no form: missing/empty request."""
    body = "request=" + json.dumps({"To": [{"Address": "mox@localhost"}], "Text": "hi"})
    for ctype in ("text/plain", "text/plain; charset=utf-8", "application/octet-stream"):
        r = await srv.http.post(srv.v0 + "Send", content=body.encode(), auth=AUTH,
                                headers={"Content-Type": ctype})
        assert r.status_code == 400, (ctype, r.text)
        assert r.json() == {"Code": "protocol", "Message": "missing/empty request"}
    # The same body as a form works, on the same (kept-alive) connection.
    r = await srv.http.post(srv.v0 + "Send", content=body.encode(), auth=AUTH,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert r.json()["Submissions"][0]["Address"] == "mox@localhost"


async def test_lone_surrogate_field_name_is_a_protocol_error(srv: WebapiServer) -> None:
    for raw in ('{"\\ud800":1}', '{"\\udfff\\ud800x":1}'):
        code, msg = await srv.error("MessageGet", raw=raw)
        assert code == "protocol"
        assert msg.startswith('parsing request: json: unknown field "\ufffd')
    # A surrogate pair is one character and no problem.
    code, msg = await srv.error("MessageGet", raw='{"\\ud83d\\ude00":1}')
    assert (code, msg) == ("protocol", 'parsing request: json: unknown field "\U0001f600"')


async def test_huge_non_form_body_is_answered_without_reading_it(srv: WebapiServer) -> None:
    """Nothing in a text/plain body is used: a huge one is not waited for."""
    stream = await trio.open_tcp_stream(srv.ip, 1080)
    async with stream:
        auth = base64.b64encode(b"%s:%s" % (AUTH[0].encode(), AUTH[1].encode())).decode()
        await stream.send_all(
            f"POST /webapi/v0/MessageGet HTTP/1.1\r\nHost: {srv.ip}\r\nAuthorization: Basic {auth}\r\n"
            "Content-Type: text/plain\r\nContent-Length: 1000000000\r\n\r\nrequest=%7B%7D".encode()
        )
        data = b""
        with trio.fail_after(20):
            while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
                chunk = await stream.receive_some()
                if not chunk:
                    break
                data += chunk
    assert data.startswith(b"HTTP/1.1 400")
    assert json.loads(data.split(b"\r\n\r\n", 1)[1]) == {"Code": "protocol", "Message": "missing/empty request"}
