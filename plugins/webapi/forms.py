"""Reading a webapi request body: the ``request`` form field and uploaded files.

mox takes the method's JSON from the form field ``request``, either
``application/x-www-form-urlencoded`` or ``multipart/form-data``. A body of
any other media type is not parsed at all (Go's form parsing ignores it), so
the request is "missing/empty request". Send also takes file uploads in
multipart forms (``alternativefile``, ``inlinefile``, ``attachedfile``), each
with its own part headers (Content-Type, Content-ID).

Bodies are read as a stream and never held whole: like mox (which keeps up
to 200 KiB of a multipart form in memory), uploaded files stay in memory
only while all of them together are under :data:`MULTIPART_MEMORY`; beyond
that each goes to a temporary file. An upload is base64-encoded into the
message, so the form is refused with ``messageTooLarge`` as soon as the
encoded size of its files passes the message size limit, without reading
(or storing) the rest.

Limits as Go's form parsing has them: an urlencoded body of at most 10 MiB,
multipart non-file fields of at most 10 MiB + 200 KiB in total.
"""

from __future__ import annotations

import codecs
import re
import urllib.parse
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from core.memo import memoize_short
from core.message.mime import MediaTypeError, parse_media_type
from plugins.webapi.errors import WebapiError, protocol

if TYPE_CHECKING:
    from plugins.webapi.multipart import MultipartReader

URLENCODED_MAX = 10 << 20
MULTIPART_MEMORY = 200 << 10
MULTIPART_FIELDS_MAX = URLENCODED_MAX + MULTIPART_MEMORY
#: Slack for multipart framing and part headers on top of fields and files.
MULTIPART_OVERHEAD = 1 << 20
#: How much of a refused body is still read (and dropped) before answering:
#: most HTTP clients only read the answer after sending the whole request.
DRAIN_MAX = 64 << 20
#: File data is written to disk in pieces of about this size.
WRITE_BUFFER = 256 << 10
UPLOAD_FIELDS = ("alternativefile", "inlinefile", "attachedfile")
#: Bytes after the last line feed held back from the multipart decoder at most.
_LINE_HOLD_MAX = 64 << 10
URLENCODED = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
FORM_TYPES = (URLENCODED, MULTIPART)


def base64_size(n: int) -> int:
    """Size of ``n`` bytes base64-encoded in lines of 76 characters with CRLF."""
    chars = (n + 2) // 3 * 4
    return chars + 2 * ((chars + 75) // 76)


@dataclass
class Upload:
    """One uploaded file part: form field name, filename and its part headers.

    The contents are in ``data`` for small uploads, else in the temporary
    file ``path`` (removed by :meth:`Form.cleanup`).
    """

    field: str
    filename: str
    content_type: str | None
    content_id: str
    data: bytes = b""
    path: Path | None = None
    size: int = 0


@dataclass
class Form:
    """The parsed body: the ``request`` value ("" when absent) and uploads."""

    request: str
    uploads: list[Upload] = field(default_factory=list)

    def cleanup(self) -> None:
        """Remove the uploads' temporary files (blocking: call from a thread)."""
        for u in self.uploads:
            if u.path is not None:
                u.path.unlink(missing_ok=True)


def media_type(content_type: str | None) -> str:
    """The lowercase media type, or the protocol error mox answers for a bad header."""
    return _media_type(content_type or "")


@memoize_short(256, maxsize=256)
def _media_type(raw: str) -> str:
    """Memoized for headers of a usual length: clients send the same one every time."""
    try:
        mt, _ = parse_media_type(raw)
    except (MediaTypeError, ValueError):
        raise protocol(f"unknown content-type {raw}") from None
    return mt


def body_limit(mt: str, max_message_size: int) -> int:
    """How many body bytes to read at most before refusing (see module docstring)."""
    if mt == MULTIPART:
        return MULTIPART_FIELDS_MAX + MULTIPART_OVERHEAD + max_message_size * 3 // 4
    return URLENCODED_MAX


def too_large(mt: str) -> WebapiError:
    """The error for a body over :func:`body_limit`."""
    if mt == MULTIPART:
        return WebapiError("messageTooLarge", "message too large")
    return protocol("parsing form: http: POST too large")


#: A ``%`` not followed by two hex digits (kept literally, as Python's unquote does).
_BAD_ESCAPE = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _unquote_plus(raw: bytes) -> str:
    """``urllib.parse.unquote_plus`` of ASCII bytes, with the escapes decoded in C.

    Every JSON quote, brace and line break of a request is a ``%XX``, and the
    standard library decodes them one by one in Python. Well-formed escapes
    become ``\\xXX`` for ``codecs.escape_decode`` (backslashes doubled
    first, so none of the input's is taken for an escape); a body with a
    malformed escape takes the standard library's path.
    """
    raw = raw.replace(b"+", b" ")
    if b"%" in raw:
        if _BAD_ESCAPE.search(raw):
            raw = urllib.parse.unquote_to_bytes(raw)
        else:
            raw = codecs.escape_decode(raw.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
    return raw.decode("utf-8", "replace")


def _request_field(body: bytes) -> str:
    """The first ``request`` value of an ASCII urlencoded body, as ``parse_qsl`` finds it."""
    for piece in body.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        if _unquote_plus(name) == "request":
            return _unquote_plus(value)
    return ""


def parse_urlencoded(body: bytes) -> Form:
    if len(body) > URLENCODED_MAX:
        raise too_large(URLENCODED)
    if body.isascii():
        # What clients send (non-ASCII is percent-encoded): the fast path.
        return Form(_request_field(body), [])
    text = body.decode("utf-8", "replace")
    value = ""
    for k, v in urllib.parse.parse_qsl(text, keep_blank_values=True, errors="replace"):
        if k == "request":
            value = v
            break
    return Form(value, [])


async def drain(body: AsyncIterable[bytes], limit: int = DRAIN_MAX) -> None:
    """Read and drop up to ``limit`` more body bytes."""
    n = 0
    async for chunk in body:
        n += len(chunk)
        if n > limit:
            break


async def read_form(
    body: AsyncIterable[bytes], mt: str, content_type: str, *, tmp_dir: Path, max_message_size: int
) -> Form:
    """Read and parse a request body as a stream (see the module docstring).

    On an error the rest of the body is drained (bounded) before the error
    is raised, so the client gets to read the answer. The caller removes the
    returned form's temporary files with :meth:`Form.cleanup`.
    """
    limit = body_limit(mt, max_message_size)
    if mt == MULTIPART:
        return await _read_multipart(body, content_type, tmp_dir, max_message_size, limit)
    if mt != URLENCODED:
        await drain(body)
        return Form("")
    chunks: list[bytes] = []
    n = 0
    async for chunk in body:
        n += len(chunk)
        if n > limit:
            await drain(body)
            raise too_large(mt)
        chunks.append(chunk)
    return parse_urlencoded(b"".join(chunks))


async def _read_multipart(
    body: AsyncIterable[bytes], content_type: str, tmp_dir: Path, max_message_size: int, limit: int
) -> Form:
    # Imported here: werkzeug's multipart parser is for forms with files, not every call.
    from plugins.webapi.multipart import MultipartReader

    try:
        reader = MultipartReader(content_type, tmp_dir, max_message_size)
    except WebapiError:
        await drain(body)
        raise
    n = 0
    try:
        try:
            async for chunk in body:
                n += len(chunk)
                if n > limit:
                    raise too_large(MULTIPART)
                if n <= MULTIPART_MEMORY:
                    reader.feed(chunk)  # nothing goes to disk yet: no thread needed
                else:
                    await trio.to_thread.run_sync(reader.feed, chunk)
            if n <= MULTIPART_MEMORY:
                reader.feed(None)
            else:
                await trio.to_thread.run_sync(reader.feed, None)
        except WebapiError:
            await drain(body)
            raise
    except BaseException:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(_discard, reader)
        raise
    return reader.form


def _discard(reader: MultipartReader) -> None:
    reader.close()
    reader.form.cleanup()

