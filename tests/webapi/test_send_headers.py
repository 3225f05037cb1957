"""Send's text bodies and headers: line endings, structural header names, long lines."""

from __future__ import annotations

from tests.webapi.conftest import WebapiServer
from tests.webapi.test_send import LATER_S, parse

TO = [{"Address": "mox@localhost"}]


async def _sent(srv: WebapiServer, req: dict[str, object]) -> bytes:
    res = await srv.call("Send", {"To": TO, "FutureRelease": LATER_S, **req})
    _, data = await srv.queued(res["Submissions"][0]["QueueMsgID"])
    return data


async def test_crlf_in_text_is_one_line_break(srv: WebapiServer) -> None:
    data = await _sent(srv, {"Text": "a\r\nb\rc\nd"})
    assert b"Content-Transfer-Encoding: 7bit\r\n" in data
    assert data.endswith(b"\r\n\r\na\r\nb\r\nc\r\nd\r\n")
    assert parse(data).get_content().splitlines() == ["a", "b", "c", "d"]
    # Both parts of a text+HTML message, and in quoted-printable (long line) too.
    data = await _sent(srv, {"Text": "x\r\ny" + "z" * 100, "HTML": "<p>x</p>\r\n<p>y</p>"})
    text, html = parse(data).iter_parts()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_content().splitlines() == ["x", "y" + "z" * 100]
    assert html.get_content().splitlines() == ["<p>x</p>", "<p>y</p>"]
