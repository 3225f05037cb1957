"""Reading a webapi request body: the ``request`` form field and uploaded files.

mox takes the method's JSON from the form field ``request``, either
``application/x-www-form-urlencoded`` or ``multipart/form-data`` (any other
media type is read as urlencoded, so a bare JSON body yields "missing/empty
request"). Send also takes file uploads in multipart forms
(``alternativefile``, ``inlinefile``, ``attachedfile``), each with its own
part headers (Content-Type, Content-ID).

Limits as Go's form parsing has them (spec 01 §2 step 8): an urlencoded body
of at most 10 MiB, multipart non-file fields of at most 10 MiB + 200 KiB in
total; file parts are bounded by the message size limit (an upload is
base64-encoded into the message, so a body far larger than 3/4 of the limit
can never compose: it is refused without reading it all).
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from core.message.mime import MediaTypeError, parse_media_type
from plugins.webapi.errors import WebapiError, protocol

URLENCODED_MAX = 10 << 20
MULTIPART_MEMORY = 200 << 10
MULTIPART_FIELDS_MAX = URLENCODED_MAX + MULTIPART_MEMORY
#: Slack for multipart framing and part headers on top of fields and files.
MULTIPART_OVERHEAD = 1 << 20
UPLOAD_FIELDS = ("alternativefile", "inlinefile", "attachedfile")


@dataclass
class Upload:
    """One uploaded file part: form field name, filename and its part headers."""

    field: str
    filename: str
    content_type: str | None
    content_id: str
    data: bytes


@dataclass
class Form:
    """The parsed body: the ``request`` value ("" when absent) and uploads."""

    request: str
    uploads: list[Upload]


def media_type(content_type: str | None) -> str:
    """The lowercase media type, or the protocol error mox answers for a bad header."""
    raw = content_type or ""
    try:
        mt, _ = parse_media_type(raw)
    except (MediaTypeError, ValueError):
        raise protocol(f"unknown content-type {raw}") from None
    return mt


def body_limit(mt: str, max_message_size: int) -> int:
    """How many body bytes to read at most before refusing (see module docstring)."""
    if mt == "multipart/form-data":
        return MULTIPART_FIELDS_MAX + MULTIPART_OVERHEAD + max_message_size * 3 // 4
    return URLENCODED_MAX


def too_large(mt: str) -> WebapiError:
    """The error for a body over :func:`body_limit`."""
    if mt == "multipart/form-data":
        return WebapiError("messageTooLarge", "message too large")
    return protocol("parsing form: http: POST too large")


def parse_urlencoded(body: bytes) -> Form:
    if len(body) > URLENCODED_MAX:
        raise too_large("application/x-www-form-urlencoded")
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


def parse_multipart(content_type: str, body: bytes) -> Form:
    """Parse a multipart/form-data body (call from a worker thread for big bodies)."""
    try:
        _, params = parse_media_type(content_type)
    except (MediaTypeError, ValueError) as exc:
        raise protocol(f"parsing form: {exc}") from None
    boundary = params.get("boundary", "")
    if not boundary:
        raise protocol("parsing form: no multipart boundary param in Content-Type")
    decoder = MultipartDecoder(boundary.encode("latin-1", "replace"))
    request: str | None = None
    uploads: list[Upload] = []
    field_bytes = 0
    current: Field | File | None = None
    chunks: list[bytes] = []
    try:
        decoder.receive_data(body)
        decoder.receive_data(None)
        while True:
            event = decoder.next_event()
            if isinstance(event, Epilogue):
                break
            if isinstance(event, NeedData):
                raise protocol("parsing form: multipart: NextPart: EOF")
            if isinstance(event, Field | File):
                current = event
                chunks = []
                continue
            if isinstance(event, Data):
                if isinstance(current, Field):
                    field_bytes += len(event.data)
                    if field_bytes > MULTIPART_FIELDS_MAX:
                        raise protocol("parsing form: multipart: message too large")
                chunks.append(event.data)
                if event.more_data or current is None:
                    continue
                data = b"".join(chunks)
                if isinstance(current, File):
                    if current.name in UPLOAD_FIELDS:
                        uploads.append(
                            Upload(
                                field=current.name,
                                filename=current.filename,
                                content_type=_part_header(current.headers, "Content-Type"),
                                content_id=_part_header(current.headers, "Content-Id") or "",
                                data=data,
                            )
                        )
                elif current.name == "request" and request is None:
                    request = data.decode("utf-8", "replace")
                current = None
    except WebapiError:
        raise
    except ValueError as exc:
        raise protocol(f"parsing form: {exc}") from None
    return Form(request or "", uploads)
