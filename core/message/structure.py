"""MIME part tree and mox's `Structure` JSON (webhooks Structure, webapi MessageGet/PartGet).

The tree keeps byte offsets into the original message, as mox's message.Part does, so that
MessagePartGet can return exactly the bytes mox returns (a multipart at the top yields its raw
body with boundaries; a leaf yields its transfer-decoded content).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .mime import (
    Headers,
    MediaTypeError,
    charset_decode,
    decode_body,
    decode_words,
    go_decode,
    parse_header_section,
    parse_media_type,
)

__all__ = [
    "Part",
    "Structure",
    "PartNotFoundError",
    "parse_part",
    "parse_structure",
    "part_structure",
    "part_by_path",
    "readable_parts",
    "TEXT_LIMIT",
]

#: Text/HTML in webhooks and MessageGet are truncated to this many bytes (1 MiB).
TEXT_LIMIT = 1024 * 1024

_TOKEN_SPECIALS = set('()<>@,;:\\"/[]?= ')


def _is_token(s: str) -> bool:
    return s != "" and all(0x20 < ord(c) < 0x7F and c not in _TOKEN_SPECIALS for c in s)


@dataclass
class Part:
    """One MIME part: parsed headers, lowercase media type, body offsets into `data`."""

    data: bytes
    headers: Headers
    media_type: str  # lowercase, "" when there is no Content-Type
    media_subtype: str
    params: dict[str, str]
    header_offset: int
    body_offset: int
    end_offset: int
    parts: list[Part] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        """"type/subtype" lowercase; "/" for a part without Content-Type (as mox reports it)."""
        return f"{self.media_type}/{self.media_subtype}"

    @property
    def cte(self) -> str:
        return self.headers.get("Content-Transfer-Encoding").upper()

    @property
    def is_multipart(self) -> bool:
        return self.media_type == "multipart"

    def raw_body(self) -> bytes:
        return self.data[self.body_offset : self.end_offset]

    def decoded(self) -> bytes:
        """Transfer-decoded body (mox Part.Reader); text parts get CRLF line endings."""
        if self.is_multipart:
            return self.raw_body()
        return decode_body(self.raw_body(), self.cte, self.media_type == "text")

    def decoded_utf8(self) -> bytes:
        """Decoded body converted to UTF-8 from its charset when known (ReaderUTF8OrBinary)."""
        return charset_decode(self.decoded(), self.params.get("charset", ""))

    @property
    def decoded_size(self) -> int:
        """Bytes after transfer decoding; 0 for multiparts (mox never reads them as a whole)."""
        if self.is_multipart:
            return 0
        return len(self.decoded())


def _content_type(h: Headers) -> tuple[str, str, dict[str, str]]:
    """mox's tolerant Content-Type handling: recover type/subtype, else octet-stream."""
    ct = h.get("Content-Type")
    if ct == "":
        return "", "", {}
    try:
        mt, params = parse_media_type(ct)
    except MediaTypeError:
        base = ct.split(";", 1)[0].strip()
        t = base.split("/", 1)
        if len(t) == 2 and _is_token(t[0]) and t[0].lower() != "multipart" and _is_token(t[1]):
            return t[0].lower(), t[1].lower(), {}
        return "application", "octet-stream", {}
    t = mt.split("/", 1)
    if len(t) != 2:
        return "application", "octet-stream", {}
    return t[0], t[1], params


def _bound_line(data: bytes, pos: int, end: int, bound: bytes) -> tuple[bool, bool, int]:
    """At a line start: is it a delimiter line for `bound` ("--b"), is it the close, line end."""
    if not data.startswith(bound, pos):
        return False, False, 0
    nl = data.find(b"\n", pos, end)
    nxt = end if nl < 0 else nl + 1
    rest = data[pos + len(bound) : nxt]
    if rest.startswith(b"--"):
        return True, True, nxt
    if rest == b"" or rest[:1] in (b" ", b"\t", b"\r", b"\n"):
        return True, False, nxt
    return False, False, 0


def _strip_eol_before(data: bytes, start: int, pos: int) -> int:
    """End of the body that precedes a delimiter at `pos`: its preceding line ending belongs
    to the delimiter (RFC 2046)."""
    if pos - 2 >= start and data[pos - 2 : pos] == b"\r\n":
        return pos - 2
    if pos - 1 >= start and data[pos - 1 : pos] == b"\n":
        return pos - 1
    return pos


def _parse(data: bytes, start: int, end: int, depth: int, delimited: bool = False) -> Part:
    """Parse the part at data[start:end].

    With `delimited`, `end` is the position of the next delimiter line: the part's headers may
    run right up to it (an empty body whose blank line is the delimiter's own line ending), and
    the body ends before the line ending that precedes the delimiter.
    """
    headers, body = parse_header_section(data, start, end)
    body_end = max(body, _strip_eol_before(data, start, end)) if delimited else end
    mt, st, params = _content_type(headers)
    if mt == "multipart" and not params.get("boundary"):
        # mox can't split a multipart without boundary; read it as opaque data.
        mt, st = "application", "octet-stream"
    p = Part(data, headers, mt, st, params, start, body, body_end)
    if mt == "multipart" and depth < 64:
        p.parts, close_end = _parse_children(data, body, body_end, params["boundary"], depth)
        # A multipart's body ends as mox slices it: inside a parent, at the
        # parent's next delimiter line (its own close delimiter, any epilogue
        # and the line ending before that delimiter included); at the top,
        # right after its close delimiter line.
        if delimited:
            p.end_offset = max(body, end)
        elif close_end is not None:
            p.end_offset = close_end
    return p


def _parse_children(
    data: bytes, start: int, end: int, boundary: str, depth: int
) -> tuple[list[Part], int | None]:
    """The parts between delimiters, and where the close delimiter line ends (None: missing)."""
    bound = b"--" + boundary.encode("utf-8", "surrogateescape")
    parts: list[Part] = []
    pos = start
    part_start: int | None = None
    while pos < end:
        idx = data.find(bound, pos, end)
        if idx < 0:
            break
        if idx != start and data[idx - 1] != 0x0A:
            pos = idx + 1
            continue
        ok, close, nxt = _bound_line(data, idx, end, bound)
        if not ok:
            pos = idx + 1
            continue
        if part_start is not None:
            # Part headers may run right up to the delimiter (an empty body whose blank line is
            # the delimiter's line ending), so headers are parsed up to the delimiter itself.
            parts.append(_parse(data, part_start, idx, depth + 1, delimited=True))
        if close:
            return parts, nxt
        part_start = nxt
        pos = nxt
    if part_start is not None and part_start < end:
        # Missing close delimiter (truncated mail): the last part runs to the end.
        parts.append(_parse(data, part_start, end, depth + 1))
    return parts, None


def parse_part(data: bytes) -> Part:
    """Parse a whole message into its part tree (never raises for malformed MIME)."""
    return _parse(data, 0, len(data), 0)


@dataclass
class Structure:
    """mox's webapi/webhook Structure; `to_json()` gives the exact JSON object."""

    ContentType: str
    ContentTypeParams: dict[str, str]
    ContentID: str
    ContentDisposition: str
    Filename: str
    DecodedSize: int
    Parts: list[Structure]

    def to_json(self) -> dict[str, Any]:
        """Dict in mox's field order; params sorted by key like Go's map marshaling."""
        return {
            "ContentType": self.ContentType,
            "ContentTypeParams": {k: self.ContentTypeParams[k] for k in sorted(self.ContentTypeParams)},
            "ContentID": self.ContentID,
            "ContentDisposition": self.ContentDisposition,
            "Filename": self.Filename,
            "DecodedSize": self.DecodedSize,
            "Parts": [p.to_json() for p in self.Parts],
        }


def _try_decode_param(v: str) -> str:
    if v == "" or not v.startswith("=?"):
        return v
    return decode_words(v)


def disposition_filename(p: Part) -> tuple[str, str]:
    """mox's Part.DispositionFilename; any parameter problem yields ("", "")."""
    cd = p.headers.get("Content-Disposition")
    disp = ""
    params: dict[str, str] = {}
    try:
        if cd:
            disp, params = parse_media_type(cd)
        filename = _try_decode_param(params.get("filename", ""))
        if filename == "":
            filename = _try_decode_param(p.params.get("name", ""))
    except ValueError:
        return "", ""
    return disp.lower(), filename


def part_structure(p: Part) -> Structure:
    """Structure of an already parsed part tree."""
    disp, filename = disposition_filename(p)
    return Structure(
        ContentType=p.content_type,
        ContentTypeParams=dict(p.params),
        ContentID=p.headers.get("Content-Id"),
        ContentDisposition=disp,
        Filename=filename,
        DecodedSize=p.decoded_size,
        Parts=[part_structure(sp) for sp in p.parts],
    )


def parse_structure(data: bytes) -> Structure:
    """Structure of a message as mox reports it (message/rfc822 parts are not expanded)."""
    return part_structure(parse_part(data))


class PartNotFoundError(LookupError):
    """A MessagePartGet path index is out of range (webapi error code partNotFound)."""


def part_by_path(data: bytes, path: list[int]) -> tuple[Headers, bytes]:
    """Headers and transfer-decoded content of the part at `path` (MessagePartGet).

    Empty path = the top-level part (a multipart's raw body including boundaries). Raises
    PartNotFoundError with mox's message `part <index> at index <i> not found`.
    """
    p = parse_part(data)
    for i, index in enumerate(path):
        if index < 0 or index >= len(p.parts):
            raise PartNotFoundError(f"part {index} at index {i} not found")
        p = p.parts[index]
    return p.headers, p.decoded()


def _read_text(p: Part, limit: int) -> str:
    data = p.decoded_utf8()[:limit]
    return go_decode(data).replace("\r\n", "\n")


def _is_plain(p: Part) -> bool:
    return p.content_type in ("text/plain", "/")


def readable_parts(p: Part, limit: int = TEXT_LIMIT) -> tuple[str, str, bool]:
    """(text, html, found): mox's selection of the first text/plain and text/html.

    Content is decoded, converted to UTF-8, truncated to `limit` bytes, then CRLF -> LF.
    """
    if _is_plain(p):
        return _read_text(p, limit), "", True
    if p.content_type == "text/html":
        return "", _read_text(p, limit), True
    text = html = ""
    have_text = have_html = False
    alternative = p.content_type == "multipart/alternative"
    for sp in p.parts:
        if _is_plain(sp) and not have_text:
            text, have_text = _read_text(sp, limit), True
        elif sp.content_type == "text/html" and not have_html:
            html, have_html = _read_text(sp, limit), True
        else:
            continue
        if not alternative:
            break
    if have_text or have_html:
        return text, html, True
    for sp in p.parts:
        t, h, f = readable_parts(sp, limit)
        if f:
            return t, h, True
    return "", "", False
