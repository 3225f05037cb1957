"""Retired queue entries in mox's JSON shape.

Field names and order as mox's ``queue.MsgRetired`` marshals them, for
``queue retired print``: times in RFC 3339 with trimmed fraction, durations
in nanoseconds, IPDomain objects.
"""

from __future__ import annotations

from typing import Any

from core.gofmt import format_rfc3339_nano
from core.store.models import MsgResult, RetiredEntry


def ip_domain(ascii_or_ip: str, unicode_or_bracketed: str) -> dict[str, Any]:
    """mox's IPDomain JSON."""
    if unicode_or_bracketed.startswith("["):
        return {"IP": ascii_or_ip, "Domain": {"ASCII": "", "Unicode": ""}}
    uni = unicode_or_bracketed if unicode_or_bracketed != ascii_or_ip else ""
    return {"IP": "", "Domain": {"ASCII": ascii_or_ip, "Unicode": uni}}


def result_json(r: MsgResult) -> dict[str, Any]:
    return {
        "Start": format_rfc3339_nano(r.start),
        "Duration": r.duration_ns,
        "Success": r.success,
        "Code": r.code,
        "Secode": r.secode,
        "Error": r.error,
    }


def attempt_json(r: MsgResult) -> dict[str, Any]:
    """mox's ``queue.MsgResult`` plus ``MXHost`` and ``TLS`` (our extension).

    mox's own admin front-end checks API results with unknown struct keys
    allowed (its sherpa client verifies results with ``allowUnknownKeys``),
    so the two extra keys are ignored there, and scripts reading mox's
    fields see them unchanged. The webapi, webhook payloads and the
    ``queue`` commands keep mox's exact shape.
    """
    return {**result_json(r), "MXHost": r.mx_host, "TLS": r.tls}


def retired_json(e: RetiredEntry) -> dict[str, Any]:
    """A retired entry as mox's ``MsgRetired``."""
    items = [
        ("ID", e.id),
        ("BaseID", e.base_id),
        ("Queued", format_rfc3339_nano(e.queued)),
        ("SenderAccount", e.sender_account),
        ("SenderLocalpart", e.sender_localpart),
        ("SenderDomainStr", e.sender_domain_str),
        ("FromID", e.from_id),
        ("RecipientLocalpart", e.recipient_localpart),
        ("RecipientDomain", ip_domain(e.recipient_domain, e.recipient_domain_str)),
        ("RecipientDomainStr", e.recipient_domain_str),
        ("Attempts", e.attempts),
        ("MaxAttempts", e.max_attempts),
        ("DialedIPs", e.dialed_ips),
        ("LastAttempt", format_rfc3339_nano(e.last_attempt)),
        ("Results", [result_json(r) for r in e.results] or None),
        ("Has8bit", e.has8bit),
        ("SMTPUTF8", e.smtputf8),
        ("IsDMARCReport", e.is_dmarc_report),
        ("IsTLSReport", e.is_tls_report),
        ("Size", e.size),
        ("MessageID", e.message_id),
        ("Subject", e.subject),
        ("Transport", e.transport),
        ("RequireTLS", e.require_tls),
        ("FutureReleaseRequest", e.future_release_request),
        ("Extra", e.extra),
        ("LastActivity", format_rfc3339_nano(e.last_activity)),
        ("RecipientAddress", e.recipient_address),
        ("Success", e.success),
        ("KeepUntil", format_rfc3339_nano(e.keep_until)),
    ]
    return dict(items)
