"""Abuse Reporting Format (RFC 5965) feedback reports: detect, parse, compose.

Mailbox providers send a spam complaint ("this is spam" clicked) to a
sender's feedback address as ``multipart/report;
report-type=feedback-report`` with three parts: a human-readable text, a
``message/feedback-report`` part of ``Name: value`` fields
(``Feedback-Type``, ``Original-Mail-From``, ``Original-Rcpt-To``,
``Arrival-Date``, ``Source-IP``...) and the original message or its header
section (``message/rfc822`` or ``text/rfc822-headers``). Providers redact
differently: some leave out ``Original-Rcpt-To`` or blank the recipient in
the original headers, so a consumer matches on what is there.

Parsing uses the stdlib ``email`` package on at most :data:`PARSE_MAX`
bytes; the composer serves plugins that simulate complaints.
"""

from __future__ import annotations

import email
import email.utils
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

from core.message.headers import read_headers
from core.message.mime import MediaTypeError, parse_media_type

#: Reports are small; more than this is not parsed as a report.
PARSE_MAX = 4 << 20


@dataclass
class FeedbackReport:
    """What a complaint says about the original message."""

    feedback_type: str = ""
    user_agent: str = ""
    original_mail_from: str = ""
    original_rcpt_to: list[str] = field(default_factory=list)
    source_ip: str = ""
    arrival_date: str = ""
    reporting_mta: str = ""
    fields: dict[str, str] = field(default_factory=dict)
    #: From the original message (or its header section) in the report.
    original_message_id: str = ""
    original_return_path: str = ""
    original_to: list[str] = field(default_factory=list)
    original_subject: str = ""


def is_feedback_report(header_bytes: bytes) -> bool:
    """Whether a message's top-level Content-Type is multipart/report; report-type=feedback-report.

    Takes (at least) the header section; cheap enough for every incoming message.
    """
    try:
        ctype = read_headers(header_bytes).get("Content-Type")
        mt, params = parse_media_type(ctype) if ctype else ("", {})
    except (MediaTypeError, ValueError):
        return False
    return mt == "multipart/report" and params.get("report-type", "").lower() == "feedback-report"


def _angle(v: str) -> str:
    v = v.strip()
    addr = email.utils.parseaddr(v)[1]
    return addr or v.strip("<>")


def _fields(text: str) -> dict[str, str]:
    """``Name: value`` lines (continuations folded) -> lowercased names; first of repeats kept,
    except Original-Rcpt-To, whose values are joined by a comma."""
    out: dict[str, str] = {}
    name = ""
    for raw in text.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and name:
            out[name] += " " + raw.strip()
            continue
        k, sep, v = raw.partition(":")
        if not sep:
            name = ""
            continue
        name = k.strip().lower()
        if name in out and name == "original-rcpt-to":
            out[name] += "," + v.strip()
        elif name not in out:
            out[name] = v.strip()
    return out


def parse_feedback_report(data: bytes) -> FeedbackReport | None:
    """The report in ``data``, or None when it is not a usable feedback report."""
    if len(data) > PARSE_MAX or not is_feedback_report(data[:65536]):
        return None
    msg = email.message_from_bytes(data)  # the compat32 policy: the default
    if not msg.is_multipart():
        return None
    report = FeedbackReport()
    found = False
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/feedback-report":
            found = True
            payload = part.get_payload()
            if isinstance(payload, list):
                # The email package parses message/* as a message: its "headers" are the fields.
                text = "\n".join(
                    f"{k}: {v}" for sub in payload if isinstance(sub, Message) for k, v in sub.items()
                )
            else:
                raw = part.get_payload(decode=True)
                text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(payload)
            f = _fields(text)
            report.fields = f
            report.feedback_type = f.get("feedback-type", "").lower()
            report.user_agent = f.get("user-agent", "")
            report.original_mail_from = _angle(f.get("original-mail-from", ""))
            report.original_rcpt_to = [
                a for a in (_angle(x) for x in f.get("original-rcpt-to", "").split(",")) if a
            ]
            report.source_ip = f.get("source-ip", "")
            report.arrival_date = f.get("arrival-date", "") or f.get("received-date", "")
            report.reporting_mta = f.get("reporting-mta", "")
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            _original(part, report)
    return report if found else None


def _original(part: Message, report: FeedbackReport) -> None:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        orig: Message = payload[0]
    else:
        raw = part.get_payload(decode=True)
        if not isinstance(raw, bytes):
            return
        orig = email.message_from_bytes(raw)  # compat32, as above
    report.original_message_id = str(orig.get("Message-ID", "") or "").strip()
    report.original_return_path = _angle(str(orig.get("Return-Path", "") or ""))
    report.original_subject = str(orig.get("Subject", "") or "")
    to = [str(v) for v in orig.get_all("To", [])]
    report.original_to = [a for _, a in email.utils.getaddresses(to) if a]


def compose_feedback_report(
    *,
    reporter: str,
    to: str,
    original: bytes,
    original_mail_from: str,
    original_rcpt_to: str,
    source_ip: str = "127.0.0.1",
    user_agent: str = "moxtrio/1.0",
    reporting_mta: str = "localhost",
    date: datetime | None = None,
) -> bytes:
    """An abuse report in the shape large mailbox providers send (CRLF line endings).

    ``original`` is the complained-about message; its header section is
    included as ``text/rfc822-headers`` (as most providers do, to keep the
    body private).
    """
    boundary = "arf-" + secrets.token_hex(12)
    when = email.utils.format_datetime(date) if date else email.utils.formatdate(localtime=True)
    head_end = original.find(b"\r\n\r\n")
    headers = original if head_end < 0 else original[: head_end + 2]
    domain = reporter.rpartition("@")[2] or "localhost"
    lines = [
        f"From: <{reporter}>",
        f"To: <{to}>",
        "Subject: Abuse report",
        f"Date: {when}",
        f"Message-ID: <{secrets.token_hex(12)}@{domain}>",
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="us-ascii"',
        "Content-Transfer-Encoding: 7bit",
        "",
        f"This is an email abuse report for an email message received from IP {source_ip} on {when}.",
        "",
        f"--{boundary}",
        "Content-Type: message/feedback-report",
        "",
        "Feedback-Type: abuse",
        f"User-Agent: {user_agent}",
        "Version: 1",
        f"Original-Mail-From: <{original_mail_from}>",
        f"Original-Rcpt-To: <{original_rcpt_to}>",
        f"Arrival-Date: {when}",
        f"Reporting-MTA: dns; {reporting_mta}",
        f"Source-IP: {source_ip}",
        "",
        f"--{boundary}",
        "Content-Type: text/rfc822-headers",
        "Content-Transfer-Encoding: 7bit",
        "",
    ]
    text = "\r\n".join(lines).encode("ascii") + b"\r\n"
    return text + headers.rstrip(b"\r\n") + b"\r\n\r\n" + f"--{boundary}--\r\n".encode("ascii")
