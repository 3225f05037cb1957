"""Low-level MIME primitives that behave like the Go libraries mox is built on.

Why not only `email`? mox's observable output (webhook Structure, DecodedSize, Subject
decoding, Content-Type parameter formatting) follows Go's `net/textproto`, `mime`,
`mime/quotedprintable` and `encoding/base64` exactly, and Python's `email` differs in many small
ways (header unfolding, RFC 2231 handling, QP line endings, space handling between encoded
words). These functions reproduce Go's rules, tolerant where mox is tolerant, so the JSON we
produce is byte-for-byte what mox produces. `email` is still used where it agrees (dates).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

__all__ = [
    "Headers",
    "MediaTypeError",
    "decode_words",
    "decode_body",
    "go_decode",
    "parse_header_section",
    "parse_media_type",
    "format_media_type",
    "qp_encode",
    "q_encode_word",
    "b_encode_word",
    "encode_word",
    "charset_decode",
    "canonical_header_key",
]


def _goreplace(exc: UnicodeError) -> tuple[str, int]:
    """Replace each undecodable byte by one U+FFFD, like Go's JSON encoder does per byte."""
    if isinstance(exc, UnicodeDecodeError):
        return "\ufffd" * (exc.end - exc.start), exc.end
    raise exc


codecs.register_error("moxtrio-goreplace", _goreplace)


def go_decode(data: bytes) -> str:
    """Bytes as Go would show them in a JSON string: UTF-8, each invalid byte as U+FFFD."""
    return data.decode("utf-8", "moxtrio-goreplace")


# ---------------------------------------------------------------------------------------------
# Header sections (net/textproto ReadMIMEHeader, tolerant)


def canonical_header_key(key: str) -> str:
    """Go's CanonicalMIMEHeaderKey: first letter and letters after '-' upper, rest lower."""
    if not key or any(c == " " or ord(c) > 0x7E or ord(c) < 0x21 for c in key):
        return key
    out = []
    upper = True
    for c in key:
        out.append(c.upper() if upper else c.lower())
        upper = c == "-"
    return "".join(out)


@dataclass
class Headers:
    """An ordered header section with Go-like lookup (case-insensitive, first value wins).

    Values are unfolded the way Go's textproto does it: each line is trimmed of surrounding
    spaces/tabs and continuation lines are joined with a single space.
    """

    items: list[tuple[str, str]] = field(default_factory=list)
    raw: bytes = b""

    def get(self, name: str) -> str:
        """First value of header `name`, "" if absent (Go's Header.Get)."""
        n = name.lower()
        for k, v in self.items:
            if k.lower() == n:
                return v
        return ""

    def get_all(self, name: str) -> list[str]:
        """All values of header `name`, in order."""
        n = name.lower()
        return [v for k, v in self.items if k.lower() == n]

    def has(self, name: str) -> bool:
        n = name.lower()
        return any(k.lower() == n for k, _ in self.items)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        return iter(self.items)


def _lines(data: bytes, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """Yield (line_start, content_end, next_line_start) for lines in data[start:end]."""
    pos = start
    while pos < end:
        nl = data.find(b"\n", pos, end)
        if nl < 0:
            yield pos, end, end
            return
        ce = nl - 1 if nl > pos and data[nl - 1] == 0x0D else nl
        yield pos, ce, nl + 1
        pos = nl + 1


def parse_header_section(data: bytes, start: int = 0, end: int | None = None) -> tuple[Headers, int]:
    """Parse the header section at data[start:end].

    Returns the headers and the offset where the body starts (just after the empty line, or
    `end` if there is no empty line: then the whole range is header). Malformed lines (no
    colon) are skipped rather than failing: mox keeps going on messy real-world mail.
    """
    if end is None:
        end = len(data)
    items: list[tuple[str, list[str]]] = []
    body = end
    for ls, ce, nxt in _lines(data, start, end):
        line = data[ls:ce]
        if not line:
            body = nxt
            break
        if line[:1] in (b" ", b"\t"):
            if items:
                t = line.strip(b" \t\r\n")
                if t:
                    items[-1][1].append(go_decode(t))
            continue
        colon = line.find(b":")
        if colon <= 0:
            continue
        key = go_decode(line[:colon].rstrip(b" \t"))
        val = line[colon + 1 :].strip(b" \t\r\n")
        items.append((key, [go_decode(val)]))
    h = Headers([(k, " ".join(p for p in v if p != "") if len(v) > 1 else v[0]) for k, v in items])
    h.raw = data[start:body]
    return h, body


# ---------------------------------------------------------------------------------------------
# Media types (mime.ParseMediaType / FormatMediaType)

_TSPECIALS = set('()<>@,;:\\"/[]?=')


def _is_token_char(c: str) -> bool:
    return 0x20 < ord(c) < 0x7F and c not in _TSPECIALS


def _is_token(s: str) -> bool:
    return s != "" and all(_is_token_char(c) for c in s)


def _consume_token(v: str) -> tuple[str, str]:
    i = 0
    while i < len(v) and _is_token_char(v[i]):
        i += 1
    return v[:i], v[i:]


def _consume_value(v: str) -> tuple[str, str]:
    if not v:
        return "", v
    if v[0] != '"':
        return _consume_token(v)
    buf: list[str] = []
    i = 1
    while i < len(v):
        c = v[i]
        if c == '"':
            return "".join(buf), v[i + 1 :]
        if c == "\\" and i + 1 < len(v) and v[i + 1] in _TSPECIALS:
            buf.append(v[i + 1])
            i += 2
            continue
        if c in "\r\n":
            return "", v
        buf.append(c)
        i += 1
    return "", v


def _consume_param(v: str) -> tuple[str, str, str]:
    rest = v.lstrip()
    if not rest.startswith(";"):
        return "", "", v
    rest = rest[1:].lstrip()
    param, rest = _consume_token(rest)
    param = param.lower()
    if not param:
        return "", "", v
    rest = rest.lstrip()
    if not rest.startswith("="):
        return "", "", v
    rest = rest[1:].lstrip()
    value, rest2 = _consume_value(rest)
    if value == "" and rest2 == rest:
        return "", "", v
    return param, value, rest2


class MediaTypeError(ValueError):
    """Content-Type/Content-Disposition that Go's mime.ParseMediaType rejects."""


def _decode_2231(v: str) -> str | None:
    parts = v.split("'", 2)
    if len(parts) != 3:
        return None
    charset = parts[0].lower()
    if not charset or charset not in ("us-ascii", "utf-8"):
        return None
    raw = _percent_unescape(parts[2])
    if raw is None:
        return None
    return go_decode(raw)


def _percent_unescape(s: str) -> bytes | None:
    out = bytearray()
    i = 0
    b = s.encode("utf-8", "surrogateescape")
    while i < len(b):
        if b[i] == 0x25:
            h = b[i + 1 : i + 3]
            if len(h) < 2 or not all(c in b"0123456789abcdefABCDEF" for c in h):
                return None
            out.append(int(h, 16))
            i += 3
        else:
            out.append(b[i])
            i += 1
    return bytes(out)


def parse_media_type(v: str) -> tuple[str, dict[str, str]]:
    """Go's mime.ParseMediaType: lowercased type and parameters (RFC 2231 joined/decoded).

    Raises MediaTypeError on invalid syntax, like Go returns an error.
    """
    base = v.split(";", 1)[0]
    mediatype = base.strip().lower()
    typ, rest = _consume_token(mediatype)
    if not typ:
        raise MediaTypeError("mime: no media type")
    if rest:
        if not rest.startswith("/"):
            raise MediaTypeError("mime: expected slash after first token")
        sub, rest = _consume_token(rest[1:])
        if not sub:
            raise MediaTypeError("mime: expected token after slash")
        if rest:
            raise MediaTypeError("mime: unexpected content after media subtype")
    params: dict[str, str] = {}
    continuation: dict[str, dict[str, str]] = {}
    v = v[len(base) :]
    while v:
        v = v.lstrip()
        if not v:
            break
        key, value, rest = _consume_param(v)
        if not key:
            if rest.strip() == ";":
                break
            raise MediaTypeError("mime: invalid media parameter")
        pmap = params
        if "*" in key:
            pmap = continuation.setdefault(key.split("*", 1)[0], {})
        if key in pmap and pmap[key] != value:
            raise MediaTypeError("mime: duplicate parameter name")
        pmap[key] = value
        v = rest
    for key, pieces in continuation.items():
        single = key + "*"
        if single in pieces:
            dec = _decode_2231(pieces[single])
            if dec is not None:
                params[key] = dec
            continue
        buf = []
        valid = False
        n = 0
        while True:
            simple = f"{key}*{n}"
            if simple in pieces:
                valid = True
                buf.append(pieces[simple])
                n += 1
                continue
            enc = simple + "*"
            if enc not in pieces:
                break
            valid = True
            if n == 0:
                dec = _decode_2231(pieces[enc])
                if dec is not None:
                    buf.append(dec)
            else:
                raw = _percent_unescape(pieces[enc])
                buf.append(go_decode(raw) if raw is not None else "")
            n += 1
        if valid:
            params[key] = "".join(buf)
    return mediatype, params


_UPPERHEX = "0123456789ABCDEF"


def format_media_type(t: str, params: dict[str, str] | None = None) -> str:
    """Go's mime.FormatMediaType: lowercase type, sorted params, token/quoted/RFC 2231 values.

    Returns "" for an invalid type or parameter name, as Go does.
    """
    if "/" in t:
        major, sub = t.split("/", 1)
        if not _is_token(major) or not _is_token(sub):
            return ""
        out = [major.lower(), "/", sub.lower()]
    else:
        if not _is_token(t):
            return ""
        out = [t.lower()]
    for attr in sorted(params or {}):
        value = (params or {})[attr]
        out.append("; ")
        if not _is_token(attr):
            return ""
        out.append(attr.lower())
        raw = value.encode("utf-8")
        if any((c < 0x20 or c > 0x7E) and c != 0x09 for c in raw):
            out.append("*=utf-8''")
            for c in raw:
                ch = chr(c)
                if c <= 0x20 or c >= 0x7F or ch in "*'%" or ch in _TSPECIALS:
                    out.append("%" + _UPPERHEX[c >> 4] + _UPPERHEX[c & 15])
                else:
                    out.append(ch)
            continue
        if _is_token(value):
            out.append("=" + value)
            continue
        out.append('="' + value.replace("\\", "\\\\").replace('"', '\\"') + '"')
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# Charsets


def charset_decode(data: bytes, charset: str) -> bytes:
    """Convert `data` from `charset` to UTF-8; unknown charsets leave the bytes as they are.

    Mirrors mox's DecodeReader: "", us-ascii and utf-8 pass through untouched.
    """
    cs = charset.strip().lower()
    if cs in ("", "us-ascii", "utf-8", "utf8"):
        return data
    try:
        info = codecs.lookup(cs)
    except LookupError:
        return data
    if not getattr(info, "_is_text_encoding", True):
        return data
    try:
        return data.decode(info.name, "replace").encode("utf-8")
    except Exception:  # noqa: BLE001 - broken codecs must not break message parsing
        return data


def _decode_charset_str(data: bytes, charset: str) -> str | None:
    cs = charset.strip().lower().split("*", 1)[0]
    if cs in ("utf-8", "utf8", "us-ascii"):
        return go_decode(data)
    if cs in ("iso-8859-1", "latin1", "latin-1"):
        return data.decode("latin-1")
    try:
        info = codecs.lookup(cs)
    except LookupError:
        return None
    if not getattr(info, "_is_text_encoding", True):
        return None
    try:
        return data.decode(info.name, "replace")
    except Exception:  # noqa: BLE001
        return None


# ---------------------------------------------------------------------------------------------
# RFC 2047 encoded words (mime.WordDecoder.DecodeHeader / WordEncoder)


class _WordError(ValueError):
    pass


def _q_decode(s: str) -> bytes:
    out = bytearray()
    b = s.encode("utf-8", "surrogateescape")
    i = 0
    while i < len(b):
        c = b[i]
        if c == 0x5F:
            out.append(0x20)
        elif c == 0x3D:
            if i + 2 >= len(b):
                raise _WordError("bad q")
            h = b[i + 1 : i + 3]
            if not all(x in b"0123456789abcdefABCDEF" for x in h):
                raise _WordError("bad q hex")
            out.append(int(h, 16))
            i += 2
        elif 0x20 <= c <= 0x7E or c in (0x0A, 0x0D, 0x09):
            out.append(c)
        else:
            raise _WordError("bad q char")
        i += 1
    return bytes(out)


def _has_non_ws(s: str) -> bool:
    return any(c not in " \t\r\n" for c in s)


def decode_words(header: str) -> str:
    """Decode RFC 2047 encoded words as Go's WordDecoder.DecodeHeader does.

    Whitespace between two adjacent encoded words is removed; malformed words are left as
    they are. Raises ValueError for an unknown charset (mox then keeps the raw value).
    """
    i = header.find("=?")
    if i < 0:
        return header
    buf = [header[:i]]
    header = header[i:]
    between = False
    while True:
        start = header.find("=?")
        if start < 0:
            break
        cur = start + 2
        j = header.find("?", cur)
        if j < 0:
            break
        charset = header[cur:j]
        cur = j + 1
        if len(header) < cur + len("Q??="):
            break
        enc = header[cur]
        cur += 1
        if header[cur] != "?":
            break
        cur += 1
        k = header.find("?=", cur)
        if k < 0:
            break
        text = header[cur:k]
        end = k + 2
        try:
            if enc in "bB":
                content = base64.b64decode(text.encode("ascii"), validate=True)
            elif enc in "qQ":
                content = _q_decode(text)
            else:
                raise _WordError("invalid encoding")
        except (_WordError, binascii.Error, UnicodeEncodeError, ValueError):
            between = False
            buf.append(header[: start + 2])
            header = header[start + 2 :]
            continue
        if start > 0 and (not between or _has_non_ws(header[:start])):
            buf.append(header[:start])
        decoded = _decode_charset_str(content, charset)
        if decoded is None:
            raise ValueError(f"mime: unhandled charset {charset!r}")
        buf.append(decoded)
        header = header[end:]
        between = True
    buf.append(header)
    return "".join(buf)


_MAX_CONTENT_LEN = 75 - len("=?UTF-8?q?") - len("?=")  # 63
_MAX_BASE64_LEN = (_MAX_CONTENT_LEN // 4) * 3  # 45


def _needs_word_encoding(s: str) -> bool:
    return any((ord(c) < 0x20 or ord(c) > 0x7E) and c != "\t" for c in s)


def _write_q(b: bytes) -> str:
    out = []
    for c in b:
        if c == 0x20:
            out.append("_")
        elif 0x21 <= c <= 0x7E and c not in b"=?_":
            out.append(chr(c))
        else:
            out.append("=" + _UPPERHEX[c >> 4] + _UPPERHEX[c & 15])
    return "".join(out)


def q_encode_word(s: str, force: bool = False) -> str:
    """Go's mime.QEncoding.Encode("utf-8", s), splitting words at 63 content bytes."""
    if not force and not _needs_word_encoding(s):
        return s
    out = ["=?utf-8?q?"]
    cur = 0
    for ch in s:
        b = ch.encode("utf-8")
        enc_len = 1 if len(b) == 1 and 0x20 <= b[0] <= 0x7E and b not in (b"=", b"?", b"_") else 3 * len(b)
        if cur + enc_len > _MAX_CONTENT_LEN:
            out.append("?= =?utf-8?q?")
            cur = 0
        out.append(_write_q(b))
        cur += enc_len
    out.append("?=")
    return "".join(out)


def b_encode_word(s: str) -> str:
    """Go's mime.BEncoding.Encode("utf-8", s), splitting at 45 raw bytes without cutting runes."""
    if not _needs_word_encoding(s):
        return s
    raw = s.encode("utf-8")
    if len(base64.b64encode(raw)) <= _MAX_CONTENT_LEN:
        return "=?utf-8?b?" + base64.b64encode(raw).decode() + "?="
    words = []
    chunk = b""
    for ch in s:
        b = ch.encode("utf-8")
        if len(chunk) + len(b) <= _MAX_BASE64_LEN:
            chunk += b
        else:
            words.append(chunk)
            chunk = b
    words.append(chunk)
    return " ".join("=?utf-8?b?" + base64.b64encode(w).decode() + "?=" for w in words)


def encode_word(s: str) -> str:
    """Encoded word as Go's net/mail Address.String picks it for a display name."""
    if any(c in s for c in "\"#$%&'(),.:;<>@[]^`{|}~"):
        return b_encode_word(s)
    return q_encode_word(s)


# ---------------------------------------------------------------------------------------------
# Content-Transfer-Encoding


_B64_RE = re.compile(rb"[^A-Za-z0-9+/=]")


def _b64_decode_tolerant(data: bytes) -> bytes:
    clean = _B64_RE.sub(b"", data)
    eq = clean.find(b"=")
    if eq >= 0:
        clean = clean[:eq]
    rem = len(clean) % 4
    if rem == 1:
        clean = clean[:-1]
        rem = 0
    if rem:
        clean += b"=" * (4 - rem)
    try:
        return base64.b64decode(clean)
    except binascii.Error:
        return b""


def _qp_decode(data: bytes) -> bytes:
    """Go's quotedprintable.Reader, but tolerant where Go would return an error."""
    out = bytearray()
    pos = 0
    n = len(data)
    hexd = b"0123456789abcdefABCDEF"
    while pos < n:
        nl = data.find(b"\n", pos)
        whole = data[pos : nl + 1] if nl >= 0 else data[pos:]
        pos = nl + 1 if nl >= 0 else n
        has_lf = whole.endswith(b"\n")
        has_crlf = whole.endswith(b"\r\n")
        line = whole.rstrip(b"\n\r \t")
        if line.endswith(b"="):
            line = line[:-1]
        elif has_lf:
            line += b"\r\n" if has_crlf else b"\n"
        i = 0
        while i < len(line):
            c = line[i]
            if c == 0x3D:
                h = line[i + 1 : i + 3]
                if len(h) == 2 and h[0] in hexd and h[1] in hexd:
                    out.append(int(h, 16))
                    i += 3
                    continue
                out.append(c)
                i += 1
                continue
            out.append(c)
            i += 1
    return bytes(out)


def _text_crlf(data: bytes) -> bytes:
    """mox's textReader: every bare LF becomes CRLF."""
    if b"\n" not in data:
        return data
    return re.sub(rb"(?<!\r)\n", b"\r\n", data)


def decode_body(raw: bytes, cte: str, is_text: bool) -> bytes:
    """Transfer-decode a part body as mox's Part.Reader does (text: LF normalized to CRLF)."""
    c = cte.strip().upper()
    if c == "BASE64":
        data = _b64_decode_tolerant(raw)
    elif c == "QUOTED-PRINTABLE":
        data = _qp_decode(raw)
    else:
        data = raw
    return _text_crlf(data) if is_text else data


def qp_encode(data: bytes) -> bytes:
    """Go's quotedprintable.Writer (text mode) followed by Close: soft breaks at 76 columns."""
    out = bytearray()
    line = bytearray()
    cr = False

    def flush_crlf() -> None:
        line.extend(b"\r\n")
        out.extend(line)
        line.clear()

    def soft_break() -> None:
        line.append(0x3D)
        flush_crlf()

    def encode(b: int) -> None:
        if 76 - 1 - len(line) < 3:
            soft_break()
        line.extend(b"=" + _UPPERHEX[b >> 4].encode() + _UPPERHEX[b & 15].encode())

    def check_last() -> None:
        if line and line[-1] in (0x20, 0x09):
            b = line.pop()
            encode(b)

    for b in data:
        if (0x21 <= b <= 0x7E and b != 0x3D) or b in (0x20, 0x09, 0x0A, 0x0D):
            if b in (0x0A, 0x0D):
                if cr and b == 0x0A:
                    cr = False
                    continue
                if b == 0x0D:
                    cr = True
                check_last()
                flush_crlf()
                continue
            if len(line) == 76 - 1:
                soft_break()
            line.append(b)
            cr = False
        else:
            encode(b)
            cr = False
    check_last()
    out.extend(line)
    return bytes(out)
