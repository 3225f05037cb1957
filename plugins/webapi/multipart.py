"""The incremental ``multipart/form-data`` reader of webapi forms (see :mod:`plugins.webapi.forms`).

A module of its own so that werkzeug's multipart parser is imported by the
first form with files, not by every webapi call.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import BinaryIO

from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from core.message.mime import MediaTypeError, parse_media_type
from plugins.webapi.errors import WebapiError, protocol
from plugins.webapi.forms import (
    _LINE_HOLD_MAX,
    MULTIPART,
    MULTIPART_FIELDS_MAX,
    MULTIPART_MEMORY,
    UPLOAD_FIELDS,
    WRITE_BUFFER,
    Form,
    Upload,
    base64_size,
    too_large,
)


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


