"""Go-compatible primitives: media types, encoded words, quoted-printable, sniffing."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.message.mime import (
    MediaTypeError,
    b_encode_word,
    decode_body,
    decode_words,
    format_media_type,
    parse_media_type,
    q_encode_word,
    qp_encode,
)
from core.message.sniff import detect_content_type


def test_parse_media_type_go_rules():
    assert parse_media_type('Text/Plain; Charset="UTF-8"; format=flowed') == (
        "text/plain",
        {"charset": "UTF-8", "format": "flowed"},
    )
    assert parse_media_type("attachment; filename*=utf-8''r%C3%A9sum%C3%A9.txt") == ("attachment", {"filename": "résumé.txt"})
    assert parse_media_type('inline; filename*0="a b"; filename*1*=%C3%A9; filename*2=c') == (
        "inline",
        {"filename": "a béc"},
    )
    assert parse_media_type("text/plain;") == ("text/plain", {})
    assert parse_media_type('a/b; x="q\\"uote"') == ("a/b", {"x": 'q"uote'})
    for bad in ["", "text/", "text/plain; charset", "a/b; x=1; x=2", "a/b c"]:
        with pytest.raises(MediaTypeError):
            parse_media_type(bad)


def test_format_media_type_go_rules():
    assert format_media_type("Text/Plain", {"charset": "utf-8"}) == "text/plain; charset=utf-8"
    assert format_media_type("inline", {"filename": "with space.txt"}) == 'inline; filename="with space.txt"'
    assert format_media_type("inline", {"filename": ""}) == 'inline; filename=""'
    assert format_media_type("inline", {"filename": 'a"b\\c'}) == 'inline; filename="a\\"b\\\\c"'
    assert format_media_type("attachment", {"filename": "résumé final.txt"}) == (
        "attachment; filename*=utf-8''r%C3%A9sum%C3%A9%20final.txt"
    )
    assert format_media_type("a/b", {"z": "1", "a": "2"}) == "a/b; a=2; z=1"
    assert format_media_type("bad type/x", {}) == ""


def test_word_encoding_splits_like_go():
    long = "é" * 40
    q = q_encode_word(long)
    words = q.split(" ")
    assert len(words) > 1 and all(len(w) <= 75 for w in words)
    assert decode_words(q) == long
    b = b_encode_word("ö" * 40 + "()")
    assert all(len(w) <= 75 for w in b.split(" ")) and decode_words(b) == "ö" * 40 + "()"
    assert q_encode_word("plain ascii") == "plain ascii"


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=120))
def test_word_round_trip(s):
    assert decode_words(q_encode_word(s, force=True)) == s
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in s if c != "\t"):
        assert decode_words(b_encode_word(s)) == s


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_qp_round_trip(data):
    enc = qp_encode(data)
    assert all(len(line) <= 76 for line in enc.split(b"\r\n"))
    # Go's QP writer turns every line ending (CR, LF, CRLF) into CRLF.
    norm = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    assert decode_body(enc, "quoted-printable", False) == norm


def test_base64_tolerant_decoding():
    assert decode_body(b"aGVs\r\nbG8=\r\n", "base64", False) == b"hello"
    assert decode_body(b"aGVsbG8", "BASE64", False) == b"hello"  # missing padding
    assert decode_body(b"aGVs bG8=", "base64", False) == b"hello"
    assert decode_body(b"a\nb\r\nc", "7bit", True) == b"a\r\nb\r\nc"


def test_sniffing():
    assert detect_content_type(b"\x89PNG\r\n\x1a\n" + bytes(10)) == "image/png"
    assert detect_content_type(b"hello") == "text/plain; charset=utf-8"
    assert detect_content_type(b"  <html><body>") == "text/html; charset=utf-8"
    assert detect_content_type(b"%PDF-1.4") == "application/pdf"
    assert detect_content_type(b"PK\x03\x04rest") == "application/zip"
    assert detect_content_type(b"\x00\x01\x02") == "application/octet-stream"
    assert detect_content_type(b"GIF89a...") == "image/gif"
    assert detect_content_type(b"\xff\xd8\xff\xe0") == "image/jpeg"


_PIECES = [
    b"Content-Type: multipart/mixed; boundary=b\r\n", b"Content-Type: text/plain; charset=latin1\r\n",
    b"Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n",
    b"Content-Type: message/delivery-status\r\n", b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n", b"Subject: =?utf-8?q?x=ZZ?=\r\n", b"From: <a@\r\n",
    b"\r\n", b"\n", b"--b\r\n", b"--b--\r\n", b"Action: failed\r\n", b"=C3=\r\n", b"\xff\xfe", b"abc",
]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), max_size=25))
def test_parsers_never_crash_on_garbage(pieces):
    from core.message.dsn import DSNParseError, parse_dsn
    from core.message.parsed import incoming_fields, message_view

    data = b"".join(pieces)
    incoming_fields(data)
    message_view(data)
    try:
        parse_dsn(data)
        parse_dsn(data, strict=True)
    except DSNParseError:
        pass
