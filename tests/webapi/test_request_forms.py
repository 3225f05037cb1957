"""Which request bodies are read as forms, as Go's form parsing in mox decides."""

from __future__ import annotations

import json

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
