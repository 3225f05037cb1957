"""Optional request signatures (our extension, off by default; see README.md).

mox only offers a static ``Authorization`` header, which a receiver cannot
use to tell whether a body was altered or replayed. With an account's
``WebhookSigningSecret`` set, each request carries
``X-Mox-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>`` over
``"<t>." + body``; the timestamp lets receivers refuse old requests.
"""

from __future__ import annotations

import hashlib
import hmac

HEADER = "X-Mox-Webhook-Signature"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """Hex HMAC-SHA256 of ``b"<timestamp>." + body`` keyed with ``secret`` (UTF-8)."""
    msg = str(int(timestamp)).encode() + b"." + body
    return hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).hexdigest()


def header_value(secret: str, timestamp: int, body: bytes) -> str:
    return f"t={int(timestamp)},v1={signature(secret, timestamp, body)}"


def verify(secret: str, header: str, body: bytes, now: int, tolerance: int = 300) -> bool:
    """Receiver-side check (also used by the tests): right MAC and a fresh timestamp."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        ts = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - ts) > tolerance:
        return False
    expected = signature(secret, ts, body)
    return hmac.compare_digest(expected, parts.get("v1", ""))
