"""Header helpers, address lists, RFC 2047 decoding, webapi Message and webhook fields."""

import json
from datetime import UTC, datetime, timedelta, timezone

from core.message.headers import (
    decode_rfc2047,
    get_header,
    get_headers,
    is_dsn,
    message_id_of,
    parse_addresses,
)
from core.message.mime import parse_header_section
from core.message.parsed import (
    format_json_time,
    incoming_fields,
    is_automated,
    message_view,
    webhook_references,
)
from tests.support.paths import DSN_SAMPLES

MSG = (
    b"From: mox@localhost\r\n"
    b'To: "A B" <x@xn--bcher-kva.example>, =?utf-8?q?J=C3=B6hn?= <j@X.Y>\r\n'
    b"Cc: grp: c1@example.org, \"Q \\\"x\\\"\" <c2@example.org>;\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus =?utf-8?q?K=C3=B6ln?= \r\n"
    b"\t=?utf-8?q?=E2=80=93?= a\r\n"
    b"Message-Id: <A@B>\r\n"
    b"References: <X@Y> garbage <trunc <Z@W>\r\n"
    b"In-Reply-To: <q@r>\r\n"
    b"Date: 2 Jan 2024 03:04:05 +0100\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"\r\n"
    b"hi \xe2\x98\xba\r\n"
)


def test_get_header_unfolds_and_first_wins():
    data = b"X-A: one\r\n  two\r\n\tthree\r\nX-A: second\r\n\r\nbody"
    assert get_header(data, "x-a") == "one two three"
    assert get_headers(data, "X-A") == ["one two three", "second"]
    assert get_header(data, "Missing") == ""
    assert message_id_of(MSG) == "<A@B>"


def test_header_section_without_body_and_lf_only():
    h, body = parse_header_section(b"A: 1\nB: 2\n")
    assert h.get("b") == "2" and body == len(b"A: 1\nB: 2\n")
    h, body = parse_header_section(b"A: 1\n\nbody")
    assert body == 6


def test_decode_rfc2047():
    assert decode_rfc2047("=?utf-8?q?a_b?= =?utf-8?b?w6k=?=") == "a bé"
    assert decode_rfc2047("x =?iso-8859-1?q?=E9?= y") == "x é y"
    assert decode_rfc2047("=?utf-8?q?bad=ZZ?=") == "=?utf-8?q?bad=ZZ?="
    assert decode_rfc2047("=?x-unknown?q?abc?=") == "=?x-unknown?q?abc?="  # kept raw
    assert decode_rfc2047("plain") == "plain"


def test_parse_addresses():
    assert parse_addresses('"John Q. Public" <plain@other.example>') == [("John Q. Public", "plain@other.example")]
    assert parse_addresses("=?utf-8?b?SsO2aG4gIlRoZSIgRMWT?= <a@b.example>") == [('Jöhn "The" Dœ', "a@b.example")]
    assert parse_addresses("a@b.example (Comment Name)") == [("Comment Name", "a@b.example")]
    assert parse_addresses("g: x@y.z, w@v.u;, last@x.y") == [("", "x@y.z"), ("", "w@v.u"), ("", "last@x.y")]
    assert parse_addresses("just a name") == []  # whole list rejected, as Go does
    assert parse_addresses("") == []


def test_message_view_fields():
    m = message_view(MSG)
    assert list(m) == ["From", "To", "CC", "BCC", "ReplyTo", "MessageID", "References", "Date", "Subject", "Text", "HTML"]
    assert m["From"] == [{"Name": "", "Address": "mox@localhost"}]
    assert m["To"] == [
        {"Name": "A B", "Address": "x@bücher.example"},
        {"Name": "Jöhn", "Address": "j@x.y"},
    ]
    assert m["CC"] == [{"Name": "", "Address": "c1@example.org"}, {"Name": 'Q "x"', "Address": "c2@example.org"}]
    assert m["Subject"] == "Grüße aus Köln– a"  # mox quirk Q4 when decoding mox's own subjects
    assert m["References"] == ["<q@r>", "<X@Y>", "garbage", "<trunc", "<Z@W>"]
    assert m["Date"] == "2024-01-02T03:04:05+01:00"
    assert m["Text"] == "hi ☺\n" and m["HTML"] == ""


def test_incoming_fields_order_and_values():
    f = incoming_fields(MSG)
    assert list(f) == [
        "From", "To", "CC", "BCC", "ReplyTo", "Subject", "MessageID", "InReplyTo",
        "References", "Date", "Text", "HTML", "Structure",
    ]
    assert f["InReplyTo"] == "<q@r>"
    assert f["References"] == ["<x@y>", "<z@w>"]
    assert f["Structure"]["DecodedSize"] == 8
    enc = json.dumps(f, ensure_ascii=False)
    assert '"Text": "hi ☺\\n"' in enc


def test_webhook_references_rules():
    from core.message.mime import Headers

    h = Headers([("References", "<A B@X>\t<c@d> junk> <e@f"), ("References", "<G@H>")])
    assert webhook_references(h) == ["<ab@x>", "<c@d>", "<g@h>"]


def test_missing_date_is_null_and_bad_date_too():
    assert message_view(b"Subject: x\r\n\r\nbody")["Date"] is None
    assert message_view(b"Date: not a date\r\n\r\nbody")["Date"] is None


def test_format_json_time():
    assert format_json_time(datetime(2026, 11, 23, 23, 56, 45, tzinfo=UTC)) == "2026-11-23T23:56:45Z"
    t = datetime(2026, 11, 23, 23, 57, 48, 506479, tzinfo=timezone(timedelta(hours=-2, minutes=-30)))
    assert format_json_time(t) == "2026-11-23T23:57:48.506479-02:30"
    assert format_json_time(datetime(2026, 1, 1, 0, 0, 0, 500000, tzinfo=UTC)) == "2026-01-01T00:00:00.5Z"
    assert format_json_time(None) is None


def test_is_dsn_loose_and_automated():
    samples = sorted(DSN_SAMPLES.glob("*.eml"))
    assert len(samples) == 5
    for f in samples:
        data = f.read_bytes()
        assert is_dsn(data)
        assert is_automated(data, "postmaster@example.org")  # multipart/report
    assert not is_dsn(MSG)
    assert is_dsn(b'Content-Type: multipart/report; report-type="Delivery-Status"; boundary=x\r\n\r\n')
    assert not is_dsn(b"Content-Type: multipart/report; report-type=disposition-notification; boundary=x\r\n\r\n")
    assert not is_automated(MSG, "mox@localhost")
    assert is_automated(MSG, "")
    assert is_automated(b"Auto-Submitted: auto-replied\r\n\r\nx", "a@b")
    assert not is_automated(b"Auto-Submitted:  No \r\n\r\nx", "a@b")
    assert is_automated(b"List-Id: <l.example>\r\n\r\nx", "a@b")
    assert not is_automated(b"Precedence: \r\n\r\nx", "a@b")
