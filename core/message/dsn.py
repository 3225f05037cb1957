"""Delivery status notifications: composing them as mox's queue does and parsing
incoming ones for DSN matching.

The composer reproduces mox's multipart/report byte layout; the parser applies mox's stricter
webhook check (second part message/(global-)delivery-status) and, by default, tolerates the
messy DSNs real MTAs send (missing per-message block, extra blank lines, non-smtp diagnostic
types). `strict=True` fails like mox's dsn.Decode does, for callers that want mox's errors.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from .address import AddressError, localpart_string, parse_address, parse_domain
from .compose import format_date, new_boundary, new_message_id
from .headers import header_section
from .mime import canonical_header_key, go_decode
from .parsed import parse_date
from .structure import parse_part

__all__ = [
    "DSNRecipient",
    "DSN",
    "DSNParseError",
    "compose_dsn",
    "dsn_text",
    "dsn_prefix",
    "parse_dsn",
    "is_dsn_strict",
    "dsn_smtp_codes",
    "SUBJECT_FAILED",
    "SUBJECT_DELAYED",
    "RETRY_WINDOW",
]

SUBJECT_FAILED = "mail delivery failed"
SUBJECT_DELAYED = "mail delivery delayed"
#: Will-Retry-Until of a delayed DSN = last attempt + 4h + 8h + 16h.
RETRY_WINDOW = timedelta(hours=4 + 8 + 16)

KNOWN_ACTIONS = ("failed", "delayed", "delivered", "relayed", "expanded")


@dataclass
class DSNRecipient:
    """Per-recipient fields of a DSN, for composing and as parse result.

    `diagnostic_code` is the SMTP reply text without the `smtp; ` type prefix (a given prefix
    is tolerated when composing); `remote_mta` is the host name without `dns;`.
    """

    address: str
    action: str = "failed"
    status: str = ""
    status_comment: str = ""
    remote_mta: str = ""
    remote_mta_ip: str = ""
    diagnostic_code: str = ""
    last_attempt: datetime | None = None
    will_retry_until: datetime | None = None
    original_recipient: str = ""
    final_log_id: str = ""
    address_type: str = "rfc822"
    diagnostic_type: str = "smtp"
    fields: dict[str, str] = field(default_factory=dict)


@dataclass
class DSN:
    """A parsed DSN: per-message fields, recipients, the human text and the original part."""

    reporting_mta: str = ""
    arrival_date: datetime | None = None
    original_envelope_id: str = ""
    received_from_mta: str = ""
    dsn_gateway: str = ""
    future_release_request: str = ""
    recipients: list[DSNRecipient] = field(default_factory=list)
    utf8: bool = False
    text_body: str = ""
    original: bytes = b""
    message_id: str = ""
    subject: str = ""
    fields: dict[str, str] = field(default_factory=dict)


class DSNParseError(ValueError):
    """The message is a DSN but its delivery-status part can't be parsed."""


# --------------------------------------------------------------------------------------------
# Composing


def _dsn_address(addr: str, utf8: bool) -> str:
    """mox's DSNString: Unicode when utf8, else localpart in `\\x{hex}` utf-8-addr-xtext with
    the domain as A-labels."""
    try:
        a = parse_address(addr)
    except AddressError:
        return addr
    if utf8:
        return a.pack(True)
    lp = "".join(
        c if 0x20 < ord(c) < 0x7F and c not in "\\+=" else f"\\x{{{ord(c):x}}}" for c in _lp_str(a.localpart)
    )
    return lp + "@" + a.domain.ascii


def _lp_str(lp: str) -> str:
    return localpart_string(lp)


def _host(hostname: str, utf8: bool) -> str:
    try:
        d = parse_domain(hostname)
    except AddressError:
        return hostname
    return d.unicode if utf8 else d.ascii


def _one_line(s: str) -> str:
    return re.sub(r"[\r\n]+[ \t]*", " ", s)


def dsn_text(
    kind: Literal["failed", "delayed"], recipient: str, error: str, smtp_lines: list[str] | tuple[str, ...] = ()
) -> str:
    """mox's human-readable explanation (first DSN part), with LF line endings."""
    if kind == "failed":
        msg = (
            "\nDelivery has failed permanently for your email to:\n\n"
            f"\t{recipient}\n\n"
            "No further deliveries will be attempted.\n\n"
            "Error during the last delivery attempt:\n\n"
            f"\t{error}\n"
        )
    else:
        msg = (
            "\nDelivery has been delayed of your email to:\n\n"
            f"\t{recipient}\n\n"
            "Next attempts to deliver: in 4 hours, 8 hours and 16 hours.\n"
            "If these attempts all fail, you will receive a notice.\n\n"
            "Error during the last delivery attempt:\n\n"
            f"\t{error}\n"
        )
    if smtp_lines:
        msg += "\nFull SMTP response:\n\n\t" + "\n\t".join(smtp_lines) + "\n"
    return msg


def dsn_prefix(from_addr: str, delivered_to: str) -> bytes:
    """Headers mox prepends when storing its own DSN in the sender's mailbox."""
    return f"Return-Path: <{from_addr}>\r\nDelivered-To: {delivered_to}\r\n".encode()


def compose_dsn(
    *,
    hostname: str,
    to_addr: str,
    kind: Literal["failed", "delayed"],
    recipients: list[DSNRecipient],
    arrival: datetime,
    original_headers: bytes = b"",
    original_message_id: str = "",
    from_addr: str | None = None,
    subject: str | None = None,
    will_retry_until: datetime | None = None,
    smtputf8: bool = False,
    dsn_utf8: bool | None = None,
    text: str | None = None,
    error: str = "",
    smtp_lines: list[str] | tuple[str, ...] = (),
    message_id: str | None = None,
    date: datetime | None = None,
    future_release_request: str = "",
) -> bytes:
    """A DSN as mox's queue writes it, CRLF line endings, without the
    Return-Path/Delivered-To prefix (see dsn_prefix).

    `smtputf8`: the original message needed SMTPUTF8; `dsn_utf8` (default: same) makes the
    DSN itself UTF-8 (global-delivery-status, message/global-headers). `original_headers` may
    be a whole message: only its header section is included. `text` defaults to mox's
    explanation built from the first recipient, `error` and `smtp_lines`. Delayed recipients
    without `will_retry_until` get `will_retry_until` or last attempt + 28h.
    """
    if not recipients:
        raise ValueError("missing per-recipient fields")
    utf8 = smtputf8 if dsn_utf8 is None else (dsn_utf8 and smtputf8)
    from_addr = from_addr or f"postmaster@{_host(hostname, utf8)}"
    if subject is None:
        subject = SUBJECT_FAILED if kind == "failed" else SUBJECT_DELAYED
    if text is None:
        r0 = recipients[0]
        rcpt = r0.address if utf8 or r0.address.isascii() else _dsn_address(r0.address, False)
        text = dsn_text(kind, rcpt, error or r0.status_comment, smtp_lines)
    mid = message_id or new_message_id(_host(hostname, utf8))
    if mid.startswith("<") and mid.endswith(">"):
        mid = mid[1:-1]
    mp_boundary = new_boundary()

    out = bytearray()

    def header(k: str, v: str) -> None:
        out.extend(f"{k}: {v}\r\n".encode())

    header("From", f"<{from_addr}>")
    header("To", f"<{to_addr}>")
    header("Subject", subject)
    header("Message-Id", f"<{mid}>")
    if original_message_id:
        header("References", original_message_id)
    header("Date", format_date(date if date is not None else datetime.now().astimezone()))
    header("MIME-Version", "1.0")
    header("Content-Type", f'multipart/report; report-type="delivery-status"; boundary="{mp_boundary}"')
    out.extend(b"\r\n")

    first = True

    def part(headers: dict[str, str]) -> None:
        nonlocal first
        out.extend((b"--" if first else b"\r\n--") + mp_boundary.encode() + b"\r\n")
        first = False
        for k in sorted(headers):
            out.extend(f"{k}: {headers[k]}\r\n".encode())
        out.extend(b"\r\n")

    if utf8:
        part({"Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "8BIT"})
    else:
        part({"Content-Type": "text/plain", "Content-Transfer-Encoding": "7BIT"})
    out.extend(text.replace("\n", "\r\n").encode("utf-8"))

    if utf8:
        part({"Content-Type": "message/global-delivery-status", "Content-Transfer-Encoding": "8BIT"})
    else:
        part({"Content-Type": "message/delivery-status", "Content-Transfer-Encoding": "7BIT"})

    def status(k: str, v: str) -> None:
        out.extend(f"{k}: {_one_line(v)}\r\n".encode())

    status("Reporting-MTA", "dns; " + _host(hostname, False))
    status("Arrival-Date", format_date(arrival))
    if future_release_request:
        status("Future-Release-Request", future_release_request)
    addr_type = "utf-8;" if utf8 else "rfc822;"
    for r in recipients:
        out.extend(b"\r\n")
        if r.original_recipient:
            status("Original-Recipient", addr_type + _dsn_address(r.original_recipient, utf8))
        status("Final-Recipient", addr_type + _dsn_address(r.address, utf8))
        status("Action", r.action)
        st = r.status or {"delayed": "4.0.0", "failed": "5.0.0"}.get(r.action, "2.0.0")
        status("Status", st + (f" ({r.status_comment})" if r.status_comment else ""))
        if r.remote_mta:
            status("Remote-MTA", "dns;" + r.remote_mta + (f" ({r.remote_mta_ip})" if r.remote_mta_ip else ""))
        if r.diagnostic_code:
            dc = r.diagnostic_code
            if not dc.lower().startswith("smtp;"):
                dc = "smtp; " + dc
            status("Diagnostic-Code", dc)
        if r.last_attempt is not None:
            status("Last-Attempt-Date", format_date(r.last_attempt))
        if r.final_log_id:
            status("Final-Log-ID", r.final_log_id)
        wru = r.will_retry_until or will_retry_until
        if wru is None and kind == "delayed" and r.action == "delayed" and r.last_attempt is not None:
            wru = r.last_attempt + RETRY_WINDOW
        if wru is not None and r.action == "delayed":
            status("Will-Retry-Until", format_date(wru))

    if original_headers:
        hdrs = header_section(original_headers)
        if utf8:
            part({"Content-Type": "message/global-headers", "Content-Transfer-Encoding": "8BIT"})
            out.extend(hdrs)
        elif smtputf8:
            part({"Content-Type": "text/rfc822-headers; charset=utf-8", "Content-Transfer-Encoding": "BASE64"})
            b64 = base64.b64encode(hdrs).decode()
            out.extend(b"".join(b64[i : i + 78].encode() + b"\r\n" for i in range(0, len(b64), 78)))
        else:
            part({"Content-Type": "text/rfc822-headers", "Content-Transfer-Encoding": "7BIT"})
            out.extend(hdrs)
    out.extend(b"\r\n--" + mp_boundary.encode() + b"--\r\n")
    return bytes(out)


# --------------------------------------------------------------------------------------------
# Parsing

STATUS_TYPES = ("message/delivery-status", "message/global-delivery-status")


def is_dsn_strict(data: bytes) -> bool:
    """Webhook DSN check: multipart/report whose second part is
    message/delivery-status or message/global-delivery-status."""
    p = parse_part(data)
    return p.content_type == "multipart/report" and len(p.parts) >= 2 and p.parts[1].content_type in STATUS_TYPES


def _blocks(text: str, strict: bool) -> list[list[tuple[str, str]]]:
    """Split the status body into header blocks (unfolded fields) separated by blank lines."""
    blocks: list[list[tuple[str, str]]] = []
    cur: list[tuple[str, list[str]]] | None = None
    lines = re.split(r"\r?\n", text)
    if lines and lines[-1] == "":
        lines.pop()  # after the final line ending: end of data, not an empty line
    for line in lines:
        if line.strip(" \t\r") == "":
            if cur is not None:
                blocks.append([(k, " ".join(v)) for k, v in cur])
                cur = None
            elif strict and blocks:
                blocks.append([])
            continue
        if line[:1] in (" ", "\t"):
            if cur:
                cur[-1][1].append(line.strip(" \t\r"))
            continue
        k, sep, v = line.partition(":")
        if not sep or not k.strip():
            if strict:
                raise DSNParseError(f"malformed MIME header line: {line}")
            continue
        if cur is None:
            cur = []
        cur.append((canonical_header_key(k.strip()), [v.strip(" \t\r")]))
    if cur is not None:
        blocks.append([(k, " ".join(v)) for k, v in cur])
    return blocks


def _fields(block: list[tuple[str, str]], strict: bool) -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in block:
        if k in out:
            if strict:
                raise DSNParseError(f"multiple values for {k!r}")
            continue
        out[k] = v
    return out


_XTEXT = re.compile(r"\\x\{([0-9a-fA-F]{1,6})\}")


def _parse_addr_field(v: str, utf8: bool, strict: bool) -> tuple[str, str]:
    typ, sep, addr = v.partition(";")
    if not sep:
        if strict:
            raise DSNParseError(f"invalid address, missing address type, or unknown address type: {v!r}")
        typ, addr = "", v
    typ = typ.strip().lower()
    if strict and typ != "rfc822" and not (utf8 and typ == "utf-8"):
        raise DSNParseError(f"invalid address, missing address type, or unknown address type: {v!r}")
    addr = addr.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1].strip()
    addr = _XTEXT.sub(lambda m: chr(int(m.group(1), 16)), addr)
    return typ, addr


def _code_line(v: str) -> tuple[str, str]:
    st, _, rest = v.strip().partition(" ")
    rest = rest.strip()
    if rest.startswith("(") and rest.endswith(")"):
        rest = rest[1:-1].strip()
    return st, rest


def _recipient(f: dict[str, str], utf8: bool, strict: bool) -> DSNRecipient:
    r = DSNRecipient(address="", action="", diagnostic_type="", fields=dict(f))
    if strict:
        for req in ("Final-Recipient", "Action", "Status"):
            if req not in f:
                raise DSNParseError(f"missing required recipient field {req!r}")
    for k, v in f.items():
        if k == "Final-Recipient":
            r.address_type, r.address = _parse_addr_field(v, utf8, strict)
        elif k == "Original-Recipient":
            _, r.original_recipient = _parse_addr_field(v, utf8, False)
        elif k == "Action":
            r.action = v.strip().lower()
        elif k == "Status":
            r.status, r.status_comment = _code_line(v)
        elif k == "Remote-Mta":
            typ, sep, rest = v.partition(";")
            host = rest.strip() if sep else v.strip()
            m = re.match(r"^(\S*)\s*\((.*)\)\s*$", host)
            if m:
                host, r.remote_mta_ip = m.group(1), m.group(2).strip()
            r.remote_mta = host
        elif k == "Diagnostic-Code":
            typ, sep, rest = v.partition(";")
            if not sep:
                if strict:
                    raise DSNParseError("missing semicolon to separate diagnostic-type from code")
                typ, rest = "", v
            r.diagnostic_type = typ.strip().lower()
            if strict and r.diagnostic_type != "smtp":
                raise DSNParseError(f"unknown diagnostic-type {typ.strip()!r}, expected smtp")
            r.diagnostic_code = rest.strip()
        elif k == "Last-Attempt-Date":
            r.last_attempt = parse_date(v)
            if strict and r.last_attempt is None:
                raise DSNParseError(f"parsing field {k!r} {v!r}: bad date")
        elif k == "Will-Retry-Until":
            r.will_retry_until = parse_date(v)
        elif k == "Final-Log-Id":
            r.final_log_id = v
    if not r.address and r.original_recipient:
        r.address = r.original_recipient
    return r


_RCPT_KEYS = {"Final-Recipient", "Original-Recipient", "Action", "Status"}


def parse_dsn(data: bytes, *, strict: bool = False) -> DSN | None:
    """Parse an incoming DSN. None if it isn't one by the webhook check.

    Raises DSNParseError when the delivery-status part can't be parsed (in strict mode also
    for everything mox's dsn.Decode rejects). Recipient count is left to the caller.
    """
    p = parse_part(data)
    if not (p.content_type == "multipart/report" and len(p.parts) >= 2 and p.parts[1].content_type in STATUS_TYPES):
        return None
    utf8 = p.parts[1].content_type == "message/global-delivery-status"
    text = go_decode(p.parts[1].decoded_utf8())
    blocks = _blocks(text + "\r\n", strict)
    dsn = DSN(utf8=utf8, message_id=p.headers.get("Message-Id"), subject=p.headers.get("Subject"))
    if not blocks:
        raise DSNParseError("reading per-message lines: no fields")
    first = _fields(blocks[0], strict)
    if strict or "Reporting-Mta" in first or not (_RCPT_KEYS & first.keys()):
        if strict and "Reporting-Mta" not in first:
            raise DSNParseError('missing required recipient field "Reporting-Mta"')
        blocks = blocks[1:]
        dsn.fields = first
        rm = first.get("Reporting-Mta", "")
        dsn.reporting_mta = rm.partition(";")[2].strip() if ";" in rm else rm.strip()
        dsn.arrival_date = parse_date(first.get("Arrival-Date", ""))
        if strict and "Arrival-Date" in first and dsn.arrival_date is None:
            raise DSNParseError("parsing arrival-date: bad date")
        dsn.original_envelope_id = first.get("Original-Envelope-Id", "")
        dsn.received_from_mta = first.get("Received-From-Mta", "")
        dsn.dsn_gateway = first.get("Dsn-Gateway", "")
        dsn.future_release_request = first.get("Future-Release-Request", "")
    if strict and not blocks:
        raise DSNParseError("reading per-recipient header: EOF")
    for b in blocks:
        if not b and not strict:
            continue
        dsn.recipients.append(_recipient(_fields(b, strict), utf8, strict))
    dsn.text_body = go_decode(p.parts[0].decoded_utf8()).replace("\r\n", "\n")
    if len(p.parts) >= 3:
        dsn.original = p.parts[2].decoded()
    return dsn


def dsn_smtp_codes(r: DSNRecipient) -> tuple[int, str]:
    """(SMTP code, enhanced code without class) for a DSN recipient:
    from an smtp Diagnostic-Code `550 5.1.1 ...`, else from Status `4.x.x`/`5.x.x`."""
    code = 0
    secode = ""
    if r.diagnostic_code and r.diagnostic_type in ("smtp", ""):
        words = r.diagnostic_code.split(" ")
        if len(words) >= 2 and len(words[0]) == 3 and words[0].isdigit() and words[0].isascii():
            code = int(words[0])
            if words[1].startswith(("4.", "5.")):
                secode = words[1][2:]
    if code == 0:
        if r.status.startswith("4."):
            code, secode = 400, r.status[2:]
        elif r.status.startswith("5."):
            code, secode = 500, r.status[2:]
    return code, secode
