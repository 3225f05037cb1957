"""Composing messages the way mox's webapi Send does.

Byte-exact layout matters: clients and tests compare headers, MIME structure and encodings
with mox. Deliberate differences (spec/README.md): a file whose type can't be detected gets
`application/octet-stream` instead of an empty Content-Type, and a Subject keeps the space
between two adjacent encoded words (the second word carries the space, encoded as `_`).
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from ..version import VERSION
from .address import Address, AddressError, format_name_address, parse_address, parse_domain
from .mime import format_media_type, q_encode_word, qp_encode
from .sniff import OCTET_STREAM, detect_content_type

__all__ = [
    "HeaderValueError",
    "MalformedMessageIDError",
    "AttachmentError",
    "MessageTooLargeError",
    "NameAddress",
    "ComposeFile",
    "ComposedMessage",
    "check_header_name",
    "check_header_value",
    "check_extra_header_name",
    "fold_long_lines",
    "ReservedHeaderError",
    "RESERVED_HEADERS",
    "format_date",
    "new_message_id",
    "new_boundary",
    "has_8bit",
    "needs_smtputf8",
    "encode_subject",
    "format_address_header",
    "text_part",
    "compose_message",
    "received_header",
    "bcc_header",
    "DEFAULT_USER_AGENT",
]

DEFAULT_USER_AGENT = f"moxtrio/{VERSION}"

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


class HeaderValueError(ValueError):
    """A header name/value with control characters (webapi code `user`)."""


class MalformedMessageIDError(ValueError):
    """A given Message-ID that isn't `<...>` (webapi code `malformedMessageID`)."""


class AttachmentError(ValueError):
    """A file with invalid base64 data or bad header values (webapi code `user`)."""


class MessageTooLargeError(ValueError):
    """The composed message exceeds the size limit (webapi code `messageTooLarge`)."""


_CONTROL = re.compile("[\x00-\x1f]")


def check_header_value(value: str, what: str = "header value") -> str:
    """Reject control characters (< 0x20, so also CR, LF and TAB) as mox does; return value."""
    if _CONTROL.search(value):
        raise HeaderValueError(f"checking header values: control characters not allowed ({what})")
    return value


def check_header_name(name: str) -> str:
    """A header field name must be printable ASCII without ':' and non-empty."""
    if name == "" or any(not (0x21 <= ord(c) <= 0x7E) or c == ":" for c in name):
        raise HeaderValueError(f"invalid header name {name!r}")
    return name


#: Header names a composer sets from its own fields (or the MIME structure); a caller's
#: extra headers may not repeat them, as a second From, Content-Type or Bcc would
#: make an ambiguous or leaking message. mox accepts them and writes duplicates.
RESERVED_HEADERS = frozenset(
    h.lower()
    for h in (
        "From", "Sender", "To", "Cc", "Bcc", "Reply-To", "Subject", "Date", "Message-Id",
        "In-Reply-To", "References", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
        "Content-Disposition", "Content-Id", "Return-Path", "Received", "DKIM-Signature",
    )
)
#: RFC 5322 section 2.1.1: no line may be longer than 998 octets (plus CR LF).
MAX_LINE_OCTETS = 998
#: Where an over-long line is folded (RFC 5322's recommended 78 columns).
_FOLD_AT = 78
_FOLD_RE = re.compile(r"(?=[ \t])")


class ReservedHeaderError(HeaderValueError):
    """A caller's extra header repeats one the composer sets itself."""


def check_extra_header_name(name: str) -> str:
    """A caller-supplied header name: valid and not one of :data:`RESERVED_HEADERS`."""
    check_header_name(name)
    if name.lower() in RESERVED_HEADERS or name.lower().startswith("resent-"):
        raise ReservedHeaderError(
            f'header "{name}" not allowed in Headers: it is set from the message fields or MIME structure'
        )
    return name


def fold_long_lines(name: str, field_text: str) -> str:
    """Fold lines of a header field (``Key: value``) longer than 998 octets at whitespace.

    Lines within the limit are left as they are (the layout stays mox's); an
    over-long line is folded before whitespace at about 78 columns. A line
    with a run of more than 998 octets without whitespace cannot be folded:
    HeaderValueError.
    """
    if len(field_text) <= MAX_LINE_OCTETS // 4:
        return field_text  # no line can pass the limit, even at 4 octets a character
    lines = field_text.split("\r\n")
    if all(len(line.encode()) <= MAX_LINE_OCTETS for line in lines):
        return field_text
    out: list[str] = []
    for line in lines:
        if len(line.encode()) <= MAX_LINE_OCTETS:
            out.append(line)
            continue
        tokens = _FOLD_RE.split(line)
        # The field name keeps its first value token: "Key:" alone on a line
        # would unfold to a value with leading whitespace in some parsers.
        cur = "".join(tokens[:2])
        for tok in tokens[2:]:
            if cur.strip(" \t") and len(cur.encode()) + len(tok.encode()) > _FOLD_AT:
                out.append(cur)
                cur = tok
            else:
                cur += tok
        out.append(cur)
    if any(len(line.encode()) > MAX_LINE_OCTETS for line in out):
        raise HeaderValueError(
            f"header {name} has a line longer than {MAX_LINE_OCTETS} octets that cannot be folded"
        )
    return "\r\n".join(out)


def format_date(dt: datetime) -> str:
    """mox's RFC 5322 date (Go layout `2 Jan 2006 15:04:05 -0700`, day without leading zero).

    A naive datetime is taken as local time.
    """
    if dt.tzinfo is None:
        dt = dt.astimezone()
    off = dt.utcoffset()
    secs = int(off.total_seconds()) if off is not None else 0
    sign = "+" if secs >= 0 else "-"
    secs = abs(secs)
    return (
        f"{dt.day} {_MONTHS[dt.month - 1]} {dt.year:04d} {dt.hour:02d}:{dt.minute:02d}:{dt.second:02d} "
        f"{sign}{secs // 3600:02d}{secs % 3600 // 60:02d}"
    )


def new_message_id(hostname: str) -> str:
    """`<22 base64url chars>@hostname`, without angle brackets (mox MessageIDGen)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode() + "@" + hostname


def new_boundary() -> str:
    """60 lowercase hex characters, like Go's multipart.Writer."""
    return secrets.token_hex(30)


def has_8bit(data: bytes) -> bool:
    """Whether any byte has the high bit set (needs BODY=8BITMIME)."""
    return not data.isascii()


def _localpart_of(addr: str | Address) -> str:
    if isinstance(addr, Address):
        return addr.localpart
    try:
        return parse_address(addr).localpart
    except AddressError:
        return addr.rsplit("@", 1)[0]


def needs_smtputf8(addresses: Iterable[str | Address]) -> bool:
    """True if any localpart is non-ASCII (IDN domains alone don't need SMTPUTF8)."""
    return any(not _localpart_of(a).isascii() for a in addresses)


def encode_subject(subject: str, smtputf8: bool) -> str:
    """Subject header value: words split on single spaces, non-ASCII words Q-encoded (unless
    smtputf8), folded before a word that would pass 77 columns (space kept before the fold).

    Unlike mox, an encoded word that follows another encoded word carries the separating space
    (`=?utf-8?q?_...?=`) so decoders don't drop it, and a word too long for a line (998 octets)
    is encoded even when ASCII, so that it can be folded.
    """
    value: list[str] = []
    line_len = len("Subject: ")
    prev_encoded = False
    for i, word in enumerate(subject.split(" ")):
        encoded = False
        # A word too long for one line becomes encoded words, which fold between them.
        too_long = len(word.encode()) > MAX_LINE_OCTETS - len("Subject: ")
        if too_long or (not smtputf8 and not word.isascii()):
            word = q_encode_word(" " + word if prev_encoded else word, force=True)
            encoded = True
        if i > 0:
            value.append(" ")
            line_len += 1
        if i > 0 and line_len + len(word) > 77:
            value.append("\r\n\t")
            line_len = 1
        value.append(word)
        line_len += len(word)
        prev_encoded = encoded
    return "".join(value)


@dataclass(frozen=True)
class NameAddress:
    """A display name and an address string (webapi NameAddress)."""

    name: str
    address: str


def _parse_name_addresses(items: Sequence[NameAddress | tuple[str, str]], what: str) -> list[tuple[str, Address]]:
    out = []
    for it in items:
        name, addr = (it.name, it.address) if isinstance(it, NameAddress) else it
        check_header_value(name, f"{what} display name")
        out.append((name, parse_address(addr)))
    return out


def format_address_header(key: str, addrs: Sequence[tuple[str, Address]], smtputf8: bool) -> str:
    """Address list value with mox's folding: fold (CRLF TAB) before an address that would take
    the line past 77 columns, counting the `Key: ` prefix."""
    v = ""
    line_len = len(key) + 2
    for name, addr in addrs:
        if v:
            v += ","
            line_len += 1
        s = format_name_address(name, addr.pack(smtputf8))
        if v and line_len + 1 + len(s) > 77:
            v += "\r\n\t"
            line_len = 1
        elif v:
            v += " "
            line_len += 1
        v += s
        line_len += len(s)
    return v


def text_part(subtype: str, text: str, smtputf8: bool) -> tuple[bytes, str, str]:
    """(body, Content-Type, Content-Transfer-Encoding) for a text/<subtype> part.

    Line endings are normalized once: CR LF, a lone CR and a lone LF each end
    one line (CR LF on the wire). mox only replaces LF, so a CR LF in the text
    becomes CR CR LF, which quoted-printable turns into an extra blank line.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    text = text.replace("\n", "\r\n")
    raw = text.encode("utf-8")
    charset = "us-ascii" if raw.isascii() else "utf-8"
    # A line over 76 octets, or a CR or LF that is not part of a line end.
    lines = raw.split(b"\r\n")
    joined = b"".join(lines)
    if max(map(len, lines)) > 76 or b"\r" in joined or b"\n" in joined:
        body, cte = qp_encode(raw), "quoted-printable"
    elif smtputf8 or charset == "utf-8":
        body, cte = raw, "8bit"
    else:
        body, cte = raw, "7bit"
    return body, _text_content_type(subtype, charset), cte


@functools.lru_cache(maxsize=64)
def _text_content_type(subtype: str, charset: str) -> str:
    """Content-Type of a text part (a handful of values, formatted once each)."""
    return format_media_type("text/" + subtype, {"charset": charset})


@dataclass
class ComposeFile:
    """A file to add: JSON files carry `base64_data` (copied verbatim), uploads carry `data`
    or, when large, the `path` of a file holding the contents (read in pieces, never whole).

    `content_type` "" means: sniff it (undetectable types become application/octet-stream).
    """

    name: str = ""
    content_type: str = ""
    content_id: str = ""
    data: bytes = b""
    base64_data: str | None = None
    path: Path | None = None


@dataclass
class ComposedMessage:
    """Result of compose_message; `message_id` includes `<>`.

    `data` holds the message, unless it was written to the `out` file given to
    compose_message (then `data` is empty and `size` counts what was written).
    """

    data: bytes
    message_id: str
    smtputf8: bool
    has_8bit: bool
    size: int


#: Output is written to a file in pieces of about this size.
_OUT_BUFFER = 1 << 20
#: Uploaded files are read in pieces that encode to whole 76-character base64 lines.
_FILE_PIECE = 57 * 16384


class _Out:
    """Where a message is composed: memory, or a file in buffered pieces.

    Counts the size and notices 8-bit bytes as it goes, and stops with
    MessageTooLargeError as soon as the size passes `max_size`, so an
    oversized message is never built whole.
    """

    def __init__(self, f: BinaryIO | None, max_size: int | None) -> None:
        self.buf = bytearray()
        self.f = f
        self.max_size = max_size
        self.size = 0
        self.has_8bit = False

    def __iadd__(self, data: bytes) -> _Out:
        self.extend(data)
        return self

    def extend(self, data: bytes) -> None:
        self.size += len(data)
        if self.max_size is not None and self.size > self.max_size:
            raise MessageTooLargeError(f"message too large: more than {self.max_size} bytes")
        if not self.has_8bit and not data.isascii():
            self.has_8bit = True
        self.buf += data
        if self.f is not None and len(self.buf) >= _OUT_BUFFER:
            self.flush()

    def flush(self) -> None:
        if self.f is not None and self.buf:
            self.f.write(self.buf)
            self.buf.clear()


class _Multipart:
    """Go multipart.Writer framing: `--b` first, `\\r\\n--b` later, `\\r\\n--b--\\r\\n` close."""

    def __init__(self, out: _Out, subtype: str) -> None:
        self.out = out
        self.boundary = new_boundary()
        self.subtype = subtype
        self.count = 0

    @property
    def content_type(self) -> str:
        return f'multipart/{self.subtype}; boundary="{self.boundary}"'

    def create_part(self, headers: dict[str, str]) -> None:
        self.out += (b"\r\n--" if self.count else b"--") + self.boundary.encode() + b"\r\n"
        for k in sorted(headers):
            self.out += f"{k}: {headers[k]}\r\n".encode()
        self.out += b"\r\n"
        self.count += 1

    def close(self) -> None:
        self.out += b"\r\n--" + self.boundary.encode() + b"--\r\n"


def _b64_lines(b64: str) -> bytes:
    return b"".join(b64[i : i + 76].encode("ascii") + b"\r\n" for i in range(0, len(b64), 76))


def _file_part(mp: _Multipart, f: ComposeFile, disposition: str) -> None:
    check_header_value(f.content_type, "file content type")
    check_header_value(f.content_id, "file content id")
    b64 = ""
    if f.base64_data is not None:
        b64 = f.base64_data.replace("\r", "").replace("\n", "")
        try:
            head = base64.b64decode(b64.encode("ascii"), validate=True)[:512]
        except (binascii.Error, UnicodeEncodeError):
            pos = next(
                (i for i, c in enumerate(b64) if not (c.isascii() and (c.isalnum() or c in "+/="))),
                max(0, len(b64) - len(b64) % 4),
            )
            raise AttachmentError(f"parsing attachment as base64: illegal base64 data at input byte {pos}") from None
    elif f.path is not None:
        with open(f.path, "rb") as fh:
            head = fh.read(512)
    else:
        head = f.data[:512]
        b64 = base64.b64encode(f.data).decode("ascii")
    ct = f.content_type
    if ct == "":
        ct = detect_content_type(head)
        # docs/differences.md, item 3: mox writes an empty Content-Type here.
        ct = ct or OCTET_STREAM
    headers = {
        "Content-Disposition": format_media_type(disposition, {"filename": f.name}),
        "Content-Transfer-Encoding": "base64",
        "Content-Type": ct,
    }
    if f.content_id:
        headers["Content-Id"] = f.content_id
    mp.create_part(headers)
    if f.base64_data is None and f.path is not None:
        _b64_file(mp.out, f.path)
    else:
        mp.out += _b64_lines(b64)


def _b64_file(out: _Out, path: Path) -> None:
    """Append a file base64-encoded in 76-character CRLF lines, one piece at a time."""
    with open(path, "rb") as fh:
        while piece := fh.read(_FILE_PIECE):
            out += base64.encodebytes(piece).replace(b"\n", b"\r\n")


def compose_message(
    *,
    hostname: str,
    from_: NameAddress | tuple[str, str],
    to: Sequence[NameAddress | tuple[str, str]] = (),
    cc: Sequence[NameAddress | tuple[str, str]] = (),
    bcc: Sequence[NameAddress | tuple[str, str]] = (),
    reply_to: Sequence[NameAddress | tuple[str, str]] = (),
    subject: str = "",
    text: str = "",
    html: str = "",
    message_id: str = "",
    references: Sequence[str] = (),
    date: datetime | None = None,
    headers: Sequence[tuple[str, str]] = (),
    alternative_files: Sequence[ComposeFile] = (),
    inline_files: Sequence[ComposeFile] = (),
    attached_files: Sequence[ComposeFile] = (),
    user_agent: str = DEFAULT_USER_AGENT,
    max_size: int | None = None,
    out_file: BinaryIO | None = None,
) -> ComposedMessage:
    """Build a message exactly in the layout of mox's webapi Send.

    BCC addresses only count for the SMTPUTF8 decision (no Bcc header is written; see
    bcc_header for Sent copies). With `out_file` the message is written there (in pieces)
    instead of returned in `data`. Raises AddressError, HeaderValueError,
    MalformedMessageIDError, AttachmentError or MessageTooLargeError.
    """
    froms = _parse_name_addresses([from_], "From")
    tos = _parse_name_addresses(to, "To")
    ccs = _parse_name_addresses(cc, "Cc")
    bccs = _parse_name_addresses(bcc, "Bcc")
    reply = _parse_name_addresses(reply_to, "Reply-To")
    smtputf8 = needs_smtputf8(a for _, a in froms + tos + ccs + bccs + reply)

    out = _Out(out_file, max_size)

    def header(k: str, v: str) -> None:
        out.extend(fold_long_lines(k, f"{k}: {v}").encode() + b"\r\n")

    header("From", format_address_header("From", froms, smtputf8))
    if reply:
        header("Reply-To", format_address_header("Reply-To", reply, smtputf8))
    if tos:
        header("To", format_address_header("To", tos, smtputf8))
    if ccs:
        header("Cc", format_address_header("Cc", ccs, smtputf8))
    if subject:
        check_header_value(subject, "subject")
        header("Subject", encode_subject(subject, smtputf8))
    header("Date", format_date(date if date is not None else datetime.now().astimezone()))
    if message_id:
        if not (message_id.startswith("<") and message_id.endswith(">")):
            raise MalformedMessageIDError("missing <> in message-id")
        check_header_value(message_id, "message-id")
    else:
        host = hostname
        try:
            d = parse_domain(hostname)
            host = d.unicode if smtputf8 else d.ascii
        except AddressError:
            pass
        message_id = "<" + new_message_id(host) + ">"
    header("Message-Id", message_id)
    if references:
        for r in references:
            check_header_value(r, "references")
        header("References", "\r\n\t".join(references))
        header("In-Reply-To", references[-1])
    header("MIME-Version", "1.0")
    own_ua = True
    for k, v in headers:
        check_header_name(k)
        check_header_value(k, "header name")
        check_header_value(v, f"header {k}")
        check_extra_header_name(k)
        header(k, v)
        if k.lower() in ("user-agent", "x-mailer"):
            own_ua = False
    if own_ua and user_agent:
        header("User-Agent", user_agent)

    mixed = related = alternative = None
    outer: _Multipart | None = None

    def container(subtype: str) -> _Multipart:
        nonlocal outer
        mp = _Multipart(out, subtype)
        if outer is None:
            header("Content-Type", mp.content_type)
            out.extend(b"\r\n")
        else:
            outer.create_part({"Content-Type": mp.content_type})
        outer = mp
        return mp

    if attached_files:
        mixed = container("mixed")
    if inline_files:
        related = container("related")
    if (text and html) or alternative_files:
        alternative = container("alternative")

    for subtype, content in (("plain", text), ("html", html)):
        if not content:
            continue
        body, ct, cte = text_part(subtype, content, smtputf8)
        if outer is None:
            header("Content-Type", ct)
            header("Content-Transfer-Encoding", cte)
            out.extend(b"\r\n")
        else:
            outer.create_part({"Content-Transfer-Encoding": cte, "Content-Type": ct})
        out.extend(body)
    if outer is None and not text and not html:
        # No body at all: still end the header section.
        out.extend(b"\r\n")

    for mp, files, disp in (
        (alternative, alternative_files, "inline"),
        (related, inline_files, "inline"),
        (mixed, attached_files, "attachment"),
    ):
        if mp is None:
            continue
        for f in files:
            _file_part(mp, f, disp)
        mp.close()

    out.flush()
    data = b"" if out_file is not None else bytes(out.buf)
    return ComposedMessage(data, message_id, smtputf8, out.has_8bit, out.size)


def bcc_header(bcc: Sequence[NameAddress | tuple[str, str]], smtputf8: bool) -> bytes:
    """`Bcc: ...\\r\\n` for a stored Sent copy (placed before DKIM signatures); b"" if none."""
    addrs = _parse_name_addresses(bcc, "Bcc")
    if not addrs:
        return b""
    return (fold_long_lines("Bcc", f"Bcc: {format_address_header('Bcc', addrs, smtputf8)}") + "\r\n").encode()


def received_header(
    *, hostname: str, received_id: str, rcpt: str, date: datetime, tls: str | None = None
) -> bytes:
    """Received header of a webapi submission, folded at 76 columns.

    `rcpt` is "" when the message has several recipients (gives `for <>;`); `tls` is e.g.
    "TLS1.3 TLS_AES_128_GCM_SHA256" for HTTPS requests.
    """
    tokens = ["Received:", "from", hostname, "by", hostname, "id", received_id]
    if tls:
        parts = tls.split(" ")
        parts[0] = "(" + parts[0]
        parts[-1] += ")"
        tokens.extend(parts)
    tokens += ["for", "<" + rcpt + ">;", format_date(date)]
    out = ""
    line_len = 0
    for i, t in enumerate(tokens):
        if i > 0 and line_len > 1 and line_len + 1 + len(t) > 76:
            out += "\r\n\t"
            line_len = 1
        elif i > 0:
            out += " "
            line_len += 1
        out += t
        line_len += len(t)
    return (out + "\r\n").encode()
