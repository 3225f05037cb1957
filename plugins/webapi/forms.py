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
import functools
import re
import secrets
import urllib.parse
from collections.abc import AsyncIterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import trio
from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from core.message.mime import MediaTypeError, parse_media_type
from plugins.webapi.errors import WebapiError, protocol

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
    """The lowercase media type, or the protocol error mox answers for a bad header.

    Memoized for headers of a usual length: clients send the same one every time.
    """
    raw = content_type or ""
    if len(raw) <= 256:
        return _media_type_cached(raw)
    return _media_type(raw)


def _media_type(raw: str) -> str:
    try:
        mt, _ = parse_media_type(raw)
    except (MediaTypeError, ValueError):
        raise protocol(f"unknown content-type {raw}") from None
    return mt


_media_type_cached = functools.lru_cache(maxsize=256)(_media_type)


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


def _part_header(headers: object, name: str) -> str | None:
    get = getattr(headers, "get", None)
    if get is None:
        return None
    v = get(name)
    return None if v is None else str(v)


class MultipartReader:
    """Incremental multipart/form-data parser that spools uploads to ``tmp_dir``.

    :meth:`feed` does blocking file IO once uploads outgrow the memory
    budget: call it from a worker thread for all but small first chunks.
    Raises :class:`WebapiError` for malformed forms and as soon as the
    uploads, base64-encoded, exceed ``max_message_size``.
    """

    def __init__(self, content_type: str, tmp_dir: Path, max_message_size: int) -> None:
        try:
            _, params = parse_media_type(content_type)
        except (MediaTypeError, ValueError) as exc:
            raise protocol(f"parsing form: {exc}") from None
        boundary = params.get("boundary", "")
        if not boundary:
            raise protocol("parsing form: no multipart boundary param in Content-Type")
        self._decoder = MultipartDecoder(boundary.encode("latin-1", "replace"))
        self._pending = bytearray()
        self._tail = len(boundary.encode("latin-1", "replace")) + 8
        self._tmp_dir = tmp_dir
        self._max_message_size = max_message_size
        self.form = Form("")
        # The first "request" field is the one used (Go's PostFormValue),
        # even when empty; ``_request`` collects it while it is current.
        self._request: bytearray | None = None
        self._request_seen = False
        self._field_bytes = 0
        self._memory = 0
        self._encoded_done = 0
        self._current: Field | File | None = None
        self._upload: Upload | None = None
        self._file: BinaryIO | None = None
        self._buf = bytearray()
        self.done = False

    def feed(self, chunk: bytes | None) -> None:
        """Take the next piece of the body (``None`` at its end).

        The decoder is given whole lines only: werkzeug's decoder emits part
        of a delimiter as data when its buffer ends inside a delimiter line
        (e.g. right after ``\\r\\n--boundary-``), which would corrupt an
        upload wherever a network read happens to end. A line without a line
        feed (binary data) is passed on once it is long, minus a tail that
        could hold the start of a delimiter.
        """
        if self.done:
            return
        if chunk is None:
            data: bytes | None = bytes(self._pending)
            self._pending.clear()
        else:
            self._pending += chunk
            cut = self._pending.rfind(b"\n") + 1
            if len(self._pending) - cut > _LINE_HOLD_MAX:
                cut = len(self._pending) - self._tail
            if cut <= 0:
                return
            data = bytes(self._pending[:cut])
            del self._pending[:cut]
        try:
            self._decoder.receive_data(data)
            if chunk is None:
                self._decoder.receive_data(None)
            self._events(chunk is None)
        except WebapiError:
            raise
        except ValueError as exc:
            raise protocol(f"parsing form: {exc}") from None

    def _events(self, at_end: bool) -> None:
        while True:
            event = self._decoder.next_event()
            if isinstance(event, Epilogue):
                self.done = True
                return
            if isinstance(event, NeedData):
                if at_end:
                    raise protocol("parsing form: multipart: NextPart: EOF")
                return
            if isinstance(event, Field | File):
                self._start(event)
            elif isinstance(event, Data):
                self._data(event.data)
                if not event.more_data:
                    self._end()

    def _start(self, event: Field | File) -> None:
        self._current = event
        if isinstance(event, File) and event.name in UPLOAD_FIELDS:
            self._upload = Upload(
                field=event.name,
                filename=event.filename,
                content_type=_part_header(event.headers, "Content-Type"),
                content_id=_part_header(event.headers, "Content-Id") or "",
            )
            self.form.uploads.append(self._upload)
        elif isinstance(event, Field) and event.name == "request" and not self._request_seen:
            self._request_seen = True
            self._request = bytearray()

    def _data(self, data: bytes) -> None:
        cur = self._current
        if isinstance(cur, Field):
            self._field_bytes += len(data)
            if self._field_bytes > MULTIPART_FIELDS_MAX:
                raise protocol("parsing form: multipart: message too large")
            if self._request is not None:
                self._request += data
            return
        up = self._upload
        if up is None:
            return  # a file part we do not use
        up.size += len(data)
        if self._encoded_done + base64_size(up.size) > self._max_message_size:
            raise too_large(MULTIPART)
        if up.path is None and self._memory + len(data) <= MULTIPART_MEMORY:
            self._memory += len(data)
            self._buf += data
            return
        if up.path is None:
            up.path = self._tmp_dir / f"upload-{secrets.token_hex(8)}"
            self._file = open(up.path, "wb")  # noqa: SIM115 - closed in _end/close
        self._buf += data
        if len(self._buf) >= WRITE_BUFFER:
            self._flush()

    def _flush(self) -> None:
        if self._file is not None and self._buf:
            self._file.write(self._buf)
            self._buf.clear()

    def _end(self) -> None:
        up = self._upload
        if self._request is not None:
            self.form.request = self._request.decode("utf-8", "replace")
            self._request = None
        if up is not None:
            if up.path is None:
                up.data = bytes(self._buf)
            else:
                self._flush()
                self.close()
            self._buf.clear()
            self._encoded_done += base64_size(up.size)
        self._current = None
        self._upload = None

    def close(self) -> None:
        """Close a file still open (after an error); :meth:`Form.cleanup` removes files."""
        if self._file is not None:
            self._file.close()
            self._file = None


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

