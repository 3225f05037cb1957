"""Form parsing: the streaming multipart reader (same result whatever the chunking, files
spooled past 200 KiB) and the urlencoded fast path (the standard library's result)."""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.webapi.errors import WebapiError
from plugins.webapi.forms import MULTIPART_MEMORY, base64_size, parse_urlencoded
from plugins.webapi.multipart import MultipartReader

CT = "multipart/form-data; boundary=XyZ"


def _part(name: str, data: bytes, filename: str | None = None, ctype: str | None = None) -> bytes:
    disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
    head = f"--XyZ\r\nContent-Disposition: {disp}\r\n" + (f"Content-Type: {ctype}\r\n" if ctype else "")
    return head.encode() + b"\r\n" + data + b"\r\n"


def _read(body: bytes, tmp: Path, chunk: int, limit: int = 10 << 20) -> MultipartReader:
    reader = MultipartReader(CT, tmp, limit)
    for i in range(0, len(body), chunk):
        reader.feed(body[i : i + chunk])
    reader.feed(None)
    return reader


@pytest.mark.parametrize("chunk", [1, 7, 4096, 1 << 30])
def test_chunking_does_not_change_the_form(tmp_path: Path, chunk: int) -> None:
    small = b"small \r\n--XyZ look-alike\r\n"
    big = os.urandom(MULTIPART_MEMORY + 1000) if chunk > 1 else b"b" * 3000
    body = (
        _part("request", b'{"first": "\xc3\xa9"}')
        + _part("other", b"x")
        + _part("request", b"second")
        + _part("attachedfile", small, "s.txt", "text/plain")
        + _part("notafield", b"ignored", "n.txt")
        + _part("inlinefile", big, "b.bin")
        + b"--XyZ--\r\n"
    )
    form = _read(body, tmp_path, chunk).form
    try:
        assert form.request == '{"first": "é"}'
        assert [(u.field, u.filename, u.content_type, u.size) for u in form.uploads] == [
            ("attachedfile", "s.txt", "text/plain", len(small)),
            ("inlinefile", "b.bin", None, len(big)),
        ]
        small_up, big_up = form.uploads
        assert small_up.data == small and small_up.path is None
        if len(big) > MULTIPART_MEMORY:
            # Past the memory budget the upload is in a file, not in memory.
            assert big_up.data == b"" and big_up.path is not None and big_up.path.read_bytes() == big
        else:
            assert big_up.data == big
    finally:
        form.cleanup()
    assert os.listdir(tmp_path) == []


def test_first_request_field_wins_even_when_empty(tmp_path: Path) -> None:
    body = _part("request", b"") + _part("request", b"{}") + b"--XyZ--\r\n"
    assert _read(body, tmp_path, 5).form.request == ""


def test_refused_as_soon_as_encoded_uploads_pass_the_limit(tmp_path: Path) -> None:
    limit = 1_000_000
    lines = b"a" * 99 + b"\n"
    data = lines * 6000
    body = _part("attachedfile", data, "a") + _part("attachedfile", data, "b") + b"--XyZ--\r\n"
    assert base64_size(len(data)) < limit < 2 * base64_size(len(data))
    reader = MultipartReader(CT, tmp_path, limit)
    with pytest.raises(WebapiError) as exc:
        for i in range(0, len(body), 1000):
            reader.feed(body[i : i + 1000])
            consumed = i + 1000
    assert (exc.value.code, exc.value.message) == ("messageTooLarge", "message too large")
    assert consumed < len(body) - 200_000  # stopped well before the end of the second file
    reader.close()
    reader.form.cleanup()


def test_malformed_forms(tmp_path: Path) -> None:
    with pytest.raises(WebapiError) as exc:
        MultipartReader("multipart/form-data", tmp_path, 100)
    assert exc.value.message == "parsing form: no multipart boundary param in Content-Type"
    with pytest.raises(WebapiError) as exc:
        _read(_part("request", b"{}"), tmp_path, 10)  # no close delimiter
    assert exc.value.message.startswith("parsing form: ")


def test_every_split_point_gives_the_same_upload(tmp_path: Path) -> None:
    """A network read may end anywhere, also inside the delimiter that ends a file."""
    content = b"line one\r\nline two\r\n\r" + bytes(range(256))
    body = _part("request", b"{}") + _part("attachedfile", content, "f") + b"--XyZ--\r\n"
    for cut in range(1, len(body)):
        for cut2 in (cut + 1, cut + 3, cut + 11):
            reader = MultipartReader(CT, tmp_path, 1 << 20)
            for piece in (body[:cut], body[cut:cut2], body[cut2:]):
                reader.feed(piece)
            reader.feed(None)
            assert reader.form.request == "{}"
            assert [u.data for u in reader.form.uploads] == [content], (cut, cut2)


def test_long_lines_without_line_feeds_are_not_held_whole(tmp_path: Path) -> None:
    content = b"a" * (3 * MULTIPART_MEMORY)
    body = _part("attachedfile", content, "f") + b"--XyZ--\r\n"
    reader = MultipartReader(CT, tmp_path, 10 << 20)
    for i in range(0, len(body), 4096):
        reader.feed(body[i : i + 4096])
        assert len(reader._pending) <= 70 << 10
    reader.feed(None)
    (up,) = reader.form.uploads
    assert up.path is not None and up.path.read_bytes() == content
    reader.form.cleanup()


def _stdlib_request(body: bytes) -> str:
    """The ``request`` field as ``urllib.parse.parse_qsl`` reads it (the reference)."""
    text = body.decode("utf-8", "replace")
    for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True, errors="replace"):
        if k == "request":
            return v
    return ""


@pytest.mark.parametrize("body", [
    b"request=%7B%22To%22%3A+%5B%5D%7D",
    b"a=1&&request&request=late",
    b"%72equest=named+by+escape&request=no",
    b"request=back%5Cslash\\x41\\\\%41",
    b"request=bad%zzescape%4",
    b"request=%e2%82%ac+lower+hex+%C3%A9",
    b"request=%C3+split+utf8%28",
    b"x=1&request=",
    b"nothing=here",
    b"",
])
def test_urlencoded_fast_path_matches_the_standard_library(body: bytes) -> None:
    assert parse_urlencoded(body).request == _stdlib_request(body)


@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=4), st.binary(max_size=30))
@settings(max_examples=300, deadline=None)
def test_urlencoded_fast_path_matches_for_any_form(fields: list[tuple[str, str]], junk: bytes) -> None:
    # Encoded forms (what clients send) and raw ASCII junk with stray escapes and backslashes.
    body = urllib.parse.urlencode([("request", v) if k == "" else (k, v) for k, v in fields]).encode()
    raw = bytes(b % 128 for b in junk).replace(b"#", b"%").replace(b"$", b"\\")
    for b in (body, raw, body + b"&request=" + raw):
        assert parse_urlencoded(b).request == _stdlib_request(b)
