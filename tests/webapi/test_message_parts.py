"""MessagePartGet slices multipart parts exactly as mox's message parser does."""

from __future__ import annotations

from tests.webapi.conftest import WebapiServer

NESTED = (
    b"From: <a@localhost>\r\nTo: <mox@localhost>\r\nSubject: nested\r\nMIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="mixed"\r\n\r\n'
    b"preamble\r\n"
    b"--mixed\r\n"
    b'Content-Type: multipart/alternative; boundary="alt"\r\n\r\n'
    b"--alt\r\nContent-Type: text/plain\r\n\r\ntext\r\n"
    b"--alt\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
    b"--alt--\r\n"
    b"\r\n--mixed\r\n"
    b'Content-Type: multipart/related; boundary="rel"\r\n\r\n'
    b"--rel\r\nContent-Type: text/plain\r\n\r\nrelated\r\n"
    b"--rel--\r\nepilogue of rel\r\n"
    b"--mixed\r\nContent-Type: text/plain\r\n\r\nlast\r\n"
    b"--mixed--\r\n"
    b"epilogue of mixed\r\n"
)


async def test_part_get_of_multiparts_slices_like_mox(srv: WebapiServer) -> None:
    mid = await srv.store_message(NESTED)

    async def part(*path: int) -> bytes:
        r = await srv.post("MessagePartGet", {"MsgID": mid, "PartPath": list(path)})
        assert r.status_code == 200, r.text
        return r.content

    # A nested multipart runs up to its parent's next delimiter line: its close
    # delimiter, any epilogue, and the line ending before the delimiter.
    assert await part(0) == (
        b"--alt\r\nContent-Type: text/plain\r\n\r\ntext\r\n"
        b"--alt\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
        b"--alt--\r\n\r\n"
    )
    assert await part(1) == b"--rel\r\nContent-Type: text/plain\r\n\r\nrelated\r\n--rel--\r\nepilogue of rel\r\n"
    # Leaf parts end before the line ending that belongs to the delimiter.
    assert await part(0, 0) == b"text"
    assert await part(0, 1) == b"<p>html</p>"
    assert await part(2) == b"last"
    # The top-level multipart ends with its close delimiter line (no epilogue).
    top = await part()
    assert top.startswith(b"preamble\r\n--mixed\r\n") and top.endswith(b"last\r\n--mixed--\r\n")
