"""Small header helpers for code that only needs a value or two from a stored message.

They parse just the header section (cheap) and share the Go-compatible rules of `mime` so the
values match what the full parsers report.
"""

from __future__ import annotations

from .address import AddressError, parse_address_list
from .mime import Headers, MediaTypeError, decode_words, parse_header_section, parse_media_type

__all__ = [
    "read_headers",
    "get_header",
    "get_headers",
    "decode_rfc2047",
    "parse_addresses",
    "is_dsn",
    "message_id_of",
    "header_section",
]


def read_headers(data: bytes) -> Headers:
    """Parsed (unfolded) top-level header section of a message."""
    return parse_header_section(data)[0]


def header_section(data: bytes) -> bytes:
    """Raw header section including the terminating empty line (whole data if none)."""
    _, body = parse_header_section(data)
    return data[:body]


def get_header(data: bytes, name: str) -> str:
    """First value of header `name` (unfolded, trimmed, not decoded); "" if absent."""
    return read_headers(data).get(name)


def get_headers(data: bytes, name: str) -> list[str]:
    """All values of header `name` in order."""
    return read_headers(data).get_all(name)


def decode_rfc2047(value: str) -> str:
    """Decode encoded words like Go/mox; a value with an unknown charset is returned as is."""
    try:
        return decode_words(value)
    except ValueError:
        return value


def parse_addresses(value: str) -> list[tuple[str, str]]:
    """[(decoded display name, address)] for a header value; [] if it doesn't parse (as mox)."""
    if value.strip() == "":
        return []
    try:
        return parse_address_list(value)
    except AddressError:
        return []


def is_dsn(data: bytes) -> bool:
    """Loose DSN check used to flag stored messages: top-level multipart/report
    with report-type=delivery-status (case-insensitive)."""
    ct = read_headers(data).get("Content-Type")
    try:
        mt, params = parse_media_type(ct)
    except MediaTypeError:
        return False
    return mt == "multipart/report" and params.get("report-type", "").lower() == "delivery-status"


def message_id_of(data: bytes) -> str:
    """Raw Message-Id header value (normally with `<>`), "" if absent."""
    return get_header(data, "Message-Id")
