"""MIME structure, DecodedSize, MessagePartGet paths and Text/HTML selection."""


import pytest

from core.message.structure import (
    PartNotFoundError,
    parse_part,
    parse_structure,
    part_by_path,
    readable_parts,
)
from tests.support.paths import MESSAGES


def _msg(name: str) -> bytes:
    return (MESSAGES / name).read_bytes()


def test_simple_text_message_matches_observed_webhook():
    data = b"From: mox@localhost\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nhi \xe2\x98\xba\r\n"
    assert parse_structure(data).to_json() == {
        "ContentType": "text/plain",
        "ContentTypeParams": {"charset": "utf-8"},
        "ContentID": "",
        "ContentDisposition": "",
        "Filename": "",
        "DecodedSize": 8,
        "Parts": [],
    }


def test_no_content_type_is_slash_and_treated_as_text():
    data = b"Subject: x\r\n\r\nplain body\r\n"
    s = parse_structure(data).to_json()
    assert s["ContentType"] == "/"
    assert s["ContentTypeParams"] == {}
    text, html, found = readable_parts(parse_part(data))
    assert (text, html, found) == ("plain body\n", "", True)


def test_rfc822_multipart_testdata():
    s = parse_structure(_msg("report-with-related.eml")).to_json()
    assert s["ContentType"] == "multipart/report"
    assert list(s["ContentTypeParams"]) == ["boundary", "report-type"]  # sorted like Go maps
    assert s["DecodedSize"] == 0
    related, status, rfc822 = s["Parts"]
    assert related["ContentType"] == "multipart/related"
    alt, icon = related["Parts"]
    assert [p["ContentType"] for p in alt["Parts"]] == ["text/plain", "text/html"]
    assert alt["Parts"][0]["ContentTypeParams"] == {"charset": "UTF-8"}
    assert alt["Parts"][0]["DecodedSize"] == 10  # "\r\nbounce\r\n"
    assert icon == {
        "ContentType": "image/png",
        "ContentTypeParams": {"name": "logo.png"},
        "ContentID": "<logo.png>",
        "ContentDisposition": "attachment",
        "Filename": "logo.png",
        "DecodedSize": 0,
        "Parts": [],
    }
    assert status["ContentType"] == "message/delivery-status"
    assert rfc822["ContentType"] == "message/rfc822"
    assert rfc822["Parts"] == []  # embedded message not expanded
    assert rfc822["DecodedSize"] > 400


def test_rfc822_multipart2_testdata_lf_and_truncated_embedded():
    data = _msg("lf-report-truncated.eml")
    s = parse_structure(data).to_json()
    assert [p["ContentType"] for p in s["Parts"]] == [
        "text/plain",
        "message/delivery-status",
        "message/rfc822",
    ]
    assert s["Parts"][0]["Filename"] == "deliveryproblems.txt"  # from Content-Type name
    assert s["Parts"][2]["ContentDisposition"] == "attachment"
    # LF-only text counted with CRLF: 5 lines incl. the empty ones.
    _, body = part_by_path(data, [0])
    assert body.count(b"\r\n") == 3 and b"\n" not in body.replace(b"\r\n", b"")
    assert s["Parts"][0]["DecodedSize"] == len(body)
    _, emb = part_by_path(data, [2])
    assert emb.startswith(b"Date: Mon, 13 Mar 2006")
    assert s["Parts"][2]["DecodedSize"] == len(emb)


def test_part_by_path_and_errors():
    data = _msg("report-with-related.eml")
    h, body = part_by_path(data, [0, 0, 1])
    assert h.get("Content-Type").startswith("text/html")
    assert body == b"\r\nbounce\r\n"
    h, top = part_by_path(data, [])
    assert top.startswith(b"--rep-7f3a91c2e0b4\r\n")
    assert top.rstrip().endswith(b"--rep-7f3a91c2e0b4--")
    with pytest.raises(PartNotFoundError, match="part 9 at index 0 not found"):
        part_by_path(data, [9])
    with pytest.raises(PartNotFoundError, match="part -1 at index 1 not found"):
        part_by_path(data, [0, -1])
    with pytest.raises(PartNotFoundError, match="part 0 at index 1 not found"):
        part_by_path(data, [2, 0])  # message/rfc822 has no sub-parts


def _mp(subtype: str, parts: list[bytes], top: bool = True) -> bytes:
    b = b"BOUND" + subtype.encode()
    out = b"Content-Type: multipart/" + subtype.encode() + b'; boundary="' + b + b'"\r\n\r\n'
    for p in parts:
        out += b"--" + b + b"\r\n" + p + b"\r\n"
    return out + b"--" + b + b"--\r\n"


def test_transfer_encodings_and_params():
    b64 = b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nAAEC\r\nAwQ="
    qp = b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nh=E9llo =\r\nworld=\r\n"
    att = (
        b"Content-Type: application/pdf; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=\"\r\n"
        b"Content-Disposition: ATTACHMENT; filename*=utf-8''na%C3%AFve.pdf\r\n\r\nx"
    )
    bad = b"Content-Type: text/plain; charset\r\nContent-Disposition: attachment; filename=\"a\r\n\r\nx"
    data = _mp("mixed", [b64, qp, att, bad])
    s = parse_structure(data).to_json()
    p0, p1, p2, p3 = s["Parts"]
    assert p0["DecodedSize"] == 5
    assert part_by_path(data, [0])[1] == b"\x00\x01\x02\x03\x04"
    assert part_by_path(data, [1])[1] == b"h\xe9llo world"
    assert p2["ContentDisposition"] == "attachment"
    assert p2["Filename"] == "naïve.pdf"
    assert p2["ContentTypeParams"] == {"name": "=?utf-8?q?r=C3=A9sum=C3=A9.pdf?="}
    # Unparseable Content-Type recovered without params; broken disposition left empty.
    assert p3["ContentType"] == "text/plain" and p3["ContentTypeParams"] == {}
    assert p3["ContentDisposition"] == "" and p3["Filename"] == ""
    # Charset conversion for text selection.
    # mixed: part 0 isn't readable, part 1 is the first readable one (converted from latin-1).
    assert readable_parts(parse_part(data)) == ("héllo world", "", True)


def test_filename_from_encoded_content_type_name():
    data = b"Content-Type: application/pdf; name=\"=?utf-8?q?r=C3=A9sum=C3=A9.pdf?=\"\r\n\r\nx"
    assert parse_structure(data).Filename == "résumé.pdf"


def test_multipart_without_boundary_is_octet_stream():
    data = b"Content-Type: multipart/mixed\r\n\r\n--x\r\n\r\nbody\r\n--x--\r\n"
    s = parse_structure(data)
    assert s.ContentType == "application/octet-stream"
    assert s.Parts == []


def test_selection_rules():
    plain = b"Content-Type: text/plain\r\n\r\nT1"
    plain2 = b"Content-Type: text/plain\r\n\r\nT2"
    html = b"Content-Type: text/html\r\n\r\n<p>H</p>"
    # alternative collects both
    assert readable_parts(parse_part(_mp("alternative", [plain, html]))) == ("T1", "<p>H</p>", True)
    # mixed stops at the first readable part
    assert readable_parts(parse_part(_mp("mixed", [html, plain]))) == ("", "<p>H</p>", True)
    # first text/plain wins
    assert readable_parts(parse_part(_mp("alternative", [plain, plain2])))[0] == "T1"
    # recursion into sub-multiparts when no direct readable part
    img = b"Content-Type: image/png\r\n\r\nxx"
    inner = _mp("alternative", [plain, html])
    nested = _mp("mixed", [img, inner])
    assert readable_parts(parse_part(nested)) == ("T1", "<p>H</p>", True)
    # top-level html
    assert readable_parts(parse_part(b"Content-Type: text/html\r\n\r\n<b>x</b>\r\n")) == ("", "<b>x</b>\n", True)
    # nothing readable
    assert readable_parts(parse_part(_mp("mixed", [img]))) == ("", "", False)


def test_truncation_at_limit_then_crlf_to_lf():
    body = b"a\r\n" * 10
    data = b"Content-Type: text/plain\r\n\r\n" + body
    text, _, _ = readable_parts(parse_part(data), limit=7)
    # 7 bytes "a\r\na\r\na" then CRLF -> LF
    assert text == "a\na\na"
    # A cut in a multi-byte sequence becomes one U+FFFD per byte (Go JSON behaviour).
    data = b"Content-Type: text/plain; charset=utf-8\r\n\r\n\xe2\x98\xba\xe2\x98\xba"
    text, _, _ = readable_parts(parse_part(data), limit=5)
    assert text == "\u263a\ufffd\ufffd"


def test_one_mib_limit_default():
    body = b"x" * (1024 * 1024 + 100)
    data = b"Content-Type: text/plain\r\n\r\n" + body
    text, _, _ = readable_parts(parse_part(data))
    assert len(text) == 1024 * 1024
