"""Queue and retired entries in mox's JSON shape (spec 03 §1, §2).

Field names and order as mox's ``queue.Msg``/``queue.MsgRetired`` marshal
them, for ``queue retired print`` and the admin API: times in RFC 3339 with
trimmed fraction, durations in nanoseconds, bytes base64, IPDomain objects.
"""

from __future__ import annotations

import base64
from typing import Any

from core.queue.timefmt import format_rfc3339_nano
from core.store.models import MsgResult, QueueEntry, RetiredEntry


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


def _b64(b: bytes) -> str | None:
    return base64.b64encode(b).decode() if b else None


def _common_head(e: QueueEntry) -> list[tuple[str, Any]]:
    return [
        ("ID", e.id),
        ("BaseID", e.base_id),
        ("Queued", format_rfc3339_nano(e.queued)),
    ]


def entry_json(e: QueueEntry) -> dict[str, Any]:
    """A queue entry as mox's ``Msg``."""
    items = _common_head(e) + [
        ("Hold", e.hold),
        ("SenderAccount", e.sender_account),
        ("SenderLocalpart", e.sender_localpart),
        ("SenderDomain", ip_domain(e.sender_domain, e.sender_domain_str)),
        ("SenderDomainStr", e.sender_domain_str),
        ("FromID", e.from_id),
        ("RecipientLocalpart", e.recipient_localpart),
        ("RecipientDomain", ip_domain(e.recipient_domain, e.recipient_domain_str)),
        ("RecipientDomainStr", e.recipient_domain_str),
        ("Attempts", e.attempts),
        ("MaxAttempts", e.max_attempts),
        ("DialedIPs", e.dialed_ips),
        ("NextAttempt", format_rfc3339_nano(e.next_attempt)),
        ("LastAttempt", format_rfc3339_nano(e.last_attempt)),
        ("Results", [result_json(r) for r in e.results] or None),
        ("Has8bit", e.has8bit),
        ("SMTPUTF8", e.smtputf8),
        ("IsDMARCReport", e.is_dmarc_report),
        ("IsTLSReport", e.is_tls_report),
        ("Size", e.size),
        ("MessageID", e.message_id),
        ("MsgPrefix", _b64(e.msg_prefix)),
        ("Subject", e.subject),
        ("DSNUTF8", _b64(e.dsn_utf8)),
        ("Transport", e.transport),
        ("RequireTLS", e.require_tls),
        ("FutureReleaseRequest", e.future_release_request),
        ("Extra", e.extra),
    ]
    return dict(items)


def retired_json(e: RetiredEntry) -> dict[str, Any]:
    """A retired entry as mox's ``MsgRetired``."""
    items = _common_head(e) + [
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
