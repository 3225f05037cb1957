"""mox's JSON views of a stored message: webapi `Message` and the incoming-webhook fields.

Both are plain dicts with mox's field names in mox's order, so callers can add their own fields
(Meta, Version) and hand them to a JSON encoder.
"""

from __future__ import annotations

import email.utils
from datetime import UTC, datetime
from typing import Any

from core.gofmt import format_json_time

from .address import AddressError, parse_address
from .headers import decode_rfc2047, parse_addresses
from .mime import Headers
from .structure import TEXT_LIMIT, Part, parse_part, part_structure, readable_parts

__all__ = [
    "format_json_time",
    "parse_date",
    "name_addresses",
    "message_references",
    "webhook_references",
    "message_view",
    "incoming_fields",
    "is_automated",
    "text_html",
]


def parse_date(value: str) -> datetime | None:
    """Parse a Date header; None when absent or unparseable (mox then reports null)."""
    if value.strip() == "":
        return None
    try:
        dt = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if dt is None or dt.year > 9999:
        return None
    if dt.tzinfo is None:
        # "-0000" means "no zone information": Go keeps it as UTC.
        dt = dt.replace(tzinfo=UTC)
    return dt


def _pack(addr: str) -> str:
    try:
        return parse_address(addr).pack(True)
    except AddressError:
        return addr


def name_addresses(h: Headers, key: str) -> list[dict[str, str]]:
    """[{"Name", "Address"}] for header `key`; Address re-packed with a Unicode domain."""
    return [{"Name": n, "Address": _pack(a)} for n, a in parse_addresses(h.get(key))]


def message_references(h: Headers) -> list[str]:
    """webapi MessageGet References: verbatim words, In-Reply-To put first when missing."""
    refs: list[str] = []
    for v in h.get_all("References"):
        refs.extend(w for w in v.replace("\t", " ").split(" ") if w)
    irt = h.get("In-Reply-To")
    if irt and irt not in refs:
        refs.insert(0, irt)
    return refs


def webhook_references(h: Headers) -> list[str]:
    """Incoming webhook References: canonical `<id>`s, lowercased."""
    s = " ".join(h.get_all("References"))
    out: list[str] = []
    while s:
        s = s.lstrip(" \t\r\n")
        if not s:
            break
        if not s.startswith("<"):
            # Garbage up to the next space or '>'.
            cut = min((i for i in (s.find(" "), s.find(">")) if i >= 0), default=-1)
            if cut < 0:
                break
            s = s[cut + 1 :]
            continue
        s = s[1:]
        i = min((j for j in (s.find("<"), s.find(">")) if j >= 0), default=-1)
        if i < 0:
            break
        if s[i] == "<":
            s = s[i:]
            continue
        mid = s[:i].replace(" ", "").replace("\t", "").lower()
        s = s[i + 1 :]
        if mid:
            out.append("<" + mid + ">")
    return out


def text_html(p: Part, limit: int = TEXT_LIMIT) -> tuple[str, str]:
    """(Text, HTML) as mox selects them, truncated to `limit` bytes."""
    text, html, _ = readable_parts(p, limit)
    return text, html


def message_view(data: bytes, *, bcc: bool = True) -> dict[str, Any]:
    """webapi MessageGet `Message` object (keys in mox's order).

    `Date` is a JSON time string or None; BCC is reported from a Bcc header when present
    (stored Sent copies), pass bcc=False to always return [].
    """
    p = parse_part(data)
    h = p.headers
    subject = decode_rfc2047(h.get("Subject"))
    text, html = text_html(p)
    return {
        "From": name_addresses(h, "From"),
        "To": name_addresses(h, "To"),
        "CC": name_addresses(h, "Cc"),
        "BCC": name_addresses(h, "Bcc") if bcc else [],
        "ReplyTo": name_addresses(h, "Reply-To"),
        "MessageID": h.get("Message-Id"),
        "References": message_references(h),
        "Date": format_json_time(parse_date(h.get("Date"))),
        "Subject": subject,
        "Text": text,
        "HTML": html,
    }


def incoming_fields(data: bytes) -> dict[str, Any]:
    """Incoming-webhook payload fields from From through Structure, in order.

    The caller adds "Version" in front and "Meta" at the end.
    """
    p = parse_part(data)
    h = p.headers
    text, html = text_html(p)
    return {
        "From": name_addresses(h, "From"),
        "To": name_addresses(h, "To"),
        "CC": name_addresses(h, "Cc"),
        "BCC": name_addresses(h, "Bcc"),
        "ReplyTo": name_addresses(h, "Reply-To"),
        "Subject": decode_rfc2047(h.get("Subject")),
        "MessageID": h.get("Message-Id"),
        "InReplyTo": h.get("In-Reply-To"),
        "References": webhook_references(h),
        "Date": format_json_time(parse_date(h.get("Date"))),
        "Text": text,
        "HTML": html,
        "Structure": part_structure(p).to_json(),
    }


def is_automated(data: bytes, mail_from: str) -> bool:
    """IncomingMeta.Automated."""
    if mail_from == "":
        return True
    p = parse_part(data)
    h = p.headers
    for k in ("List-Id", "List-Unsubscribe", "List-Unsubscribe-Post", "Precedence"):
        if h.get(k) != "":
            return True
    auto = h.get("Auto-Submitted").strip()
    if auto != "" and auto.lower() != "no":
        return True
    return p.content_type == "multipart/report"
