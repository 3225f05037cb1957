"""Content sniffing as Go's http.DetectContentType (WHATWG algorithm subset Go implements).

mox uses it for attachments without a type (webapi Send) and for MessagePartGet responses, so
we need the same answers (e.g. `text/plain; charset=utf-8`, `image/png`).
"""

from __future__ import annotations

__all__ = ["detect_content_type", "OCTET_STREAM"]

OCTET_STREAM = "application/octet-stream"

_WS = b"\t\n\x0c\r "

_HTML_TAGS = [
    b"<!DOCTYPE HTML", b"<HTML", b"<HEAD", b"<SCRIPT", b"<IFRAME", b"<H1", b"<DIV", b"<FONT",
    b"<TABLE", b"<A", b"<STYLE", b"<TITLE", b"<B", b"<BODY", b"<BR", b"<P", b"<!--",
]

_EXACT: list[tuple[bytes, str]] = [
    (b"%PDF-", "application/pdf"),
    (b"%!PS-Adobe-", "application/postscript"),
]

_BOMS: list[tuple[bytes, str]] = [
    (b"\xfe\xff", "text/plain; charset=utf-16be"),
    (b"\xff\xfe", "text/plain; charset=utf-16le"),
    (b"\xef\xbb\xbf", "text/plain; charset=utf-8"),
]

_BINARY_SIGS: list[tuple[bytes, str]] = [
    (b"\x00\x00\x01\x00", "image/x-icon"),
    (b"\x00\x00\x02\x00", "image/x-icon"),
    (b"BM", "image/bmp"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
]

_AV_SIGS: list[tuple[bytes, str]] = [
    (b"ID3", "audio/mpeg"),
    (b"OggS\x00", "application/ogg"),
    (b"MThd\x00\x00\x00\x06", "audio/midi"),
    (b"\x1a\x45\xdf\xa3", "video/webm"),
]

_LATE_SIGS: list[tuple[bytes, str]] = [
    (b"\x00\x01\x00\x00", "font/ttf"),
    (b"OTTO", "font/otf"),
    (b"ttcf", "font/collection"),
    (b"wOFF", "font/woff"),
    (b"wOF2", "font/woff2"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"PK\x03\x04", "application/zip"),
    (b"Rar!\x1a\x07\x00", "application/x-rar-compressed"),
    (b"Rar!\x1a\x07\x01\x00", "application/x-rar-compressed"),
    (b"\x00asm", "application/wasm"),
]


def _riff(data: bytes, kind: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8 : 8 + len(kind)] == kind


def _mp4(data: bytes) -> bool:
    if len(data) < 12:
        return False
    box = int.from_bytes(data[:4], "big")
    if len(data) < box or box % 4 != 0 or data[4:8] != b"ftyp":
        return False
    for st in range(8, box, 4):
        if st == 12:
            continue
        if data[st : st + 3] == b"mp4":
            return True
    return False


def _is_binary(b: int) -> bool:
    return b <= 0x08 or b == 0x0B or 0x0E <= b <= 0x1A or 0x1C <= b <= 0x1F


def detect_content_type(data: bytes) -> str:
    """Content type of up to the first 512 bytes; `application/octet-stream` if unknown."""
    data = data[:512]
    stripped = data.lstrip(_WS)
    upper = stripped[:16].upper()
    for tag in _HTML_TAGS:
        if upper.startswith(tag) and len(stripped) > len(tag) and stripped[len(tag)] in b" >":
            return "text/html; charset=utf-8"
    if stripped.startswith(b"<?xml"):
        return "text/xml; charset=utf-8"
    for sig, ct in _EXACT + _BOMS + _BINARY_SIGS:
        if data.startswith(sig):
            return ct
    if _riff(data, b"WEBPVP"):
        return "image/webp"
    if len(data) >= 12 and data[:4] == b"FORM" and data[8:12] == b"AIFF":
        return "audio/aiff"
    for sig, ct in _AV_SIGS:
        if data.startswith(sig):
            return ct
    if _riff(data, b"AVI "):
        return "video/avi"
    if _riff(data, b"WAVE"):
        return "audio/wave"
    if _mp4(data):
        return "video/mp4"
    for sig, ct in _LATE_SIGS:
        if data.startswith(sig):
            return ct
    if not any(_is_binary(b) for b in stripped):
        return "text/plain; charset=utf-8"
    return OCTET_STREAM
