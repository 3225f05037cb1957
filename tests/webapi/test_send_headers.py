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


async def test_structural_header_names_refused_in_headers(srv: WebapiServer) -> None:
    names = [
        "From", "Sender", "Content-Type", "MIME-Version", "Bcc", "Content-Transfer-Encoding",
        "Message-Id", "Date", "To", "Cc", "Reply-To", "Subject", "In-Reply-To", "References",
        "content-type", "FROM", "Resent-From", "Return-Path", "Received", "DKIM-Signature",
    ]
    for name in names:
        code, msg = await srv.error(
            "Send", {"To": TO, "Text": "x", "Headers": [["X-Fine", "1"], [name, "evil@example.org"]]}
        )
        assert code == "user", (name, code, msg)
        assert msg == f'header "{name}" not allowed in Headers: it is set from the message fields or MIME structure'
    # Other headers are still written as given, once.
    data = await _sent(srv, {"Text": "x", "Headers": [["X-Fine", "1"], ["List-Id", "<l.example>"]]})
    assert data.count(b"\r\nX-Fine: 1\r\n") == 1 and b"\r\nList-Id: <l.example>\r\n" in data
    assert data.count(b"\r\nFrom: ") == 1


def _header_section(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


async def test_long_header_lines_are_folded_or_refused(srv: WebapiServer) -> None:
    subject = "x" * 100_000
    data = await _sent(srv, {"Text": "x", "Subject": subject})
    lines = _header_section(data).split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    assert parse(data)["Subject"] == subject
    # Words separated by spaces, non-ASCII included: folded, and read back the same.
    subject = " ".join(["wörd" * 300] * 5 + ["plain"] * 400)
    data = await _sent(srv, {"Text": "x", "Subject": subject})
    assert max(len(line) for line in _header_section(data).split(b"\r\n")) <= 998
    # (mox's folding keeps the space before a fold, so whitespace runs may differ)
    assert " ".join(parse(data)["Subject"].split()) == subject
    # A custom header with spaces is folded at whitespace; unfolding restores it.
    value = " ".join(["v" * 50] * 100)
    data = await _sent(srv, {"Text": "x", "Headers": [["X-Long", value]]})
    assert max(len(line) for line in _header_section(data).split(b"\r\n")) <= 998
    assert parse(data)["X-Long"] == value
    # Runs without whitespace longer than a line cannot be folded: refused.
    for req in (
        {"Headers": [["X-Long", "v" * 2000]]},
        {"MessageID": "<" + "m" * 2000 + "@x>"},
        {"References": ["<" + "r" * 2000 + "@x>"]},
    ):
        code, msg = await srv.error("Send", {"To": TO, "Text": "x", **req})
        assert code == "user" and "longer than 998 octets" in msg, (req, msg)
