"""TLS server contexts for listeners, from the certificates in mox.conf.

One context per listener, shared by SMTP STARTTLS, implicit-TLS submission
and HTTPS. mox key files may carry a ``Note:`` PEM header that Python's
``ssl`` refuses; :func:`core.pem.server_ssl_context` loads them
through ``cryptography``.
"""

from __future__ import annotations

import ssl
from typing import Any

from core.pem import server_ssl_context

_MIN_VERSIONS = {
    "TLSv1.0": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}


def listener_ssl_context(config: Any, listener_name: str, alpn: list[str] | None = None) -> ssl.SSLContext | None:
    """The server context for a listener, or None when it has no certificate.

    Blocking (reads key files): call at start-up, not per connection.
    """
    listener = config.static.Listeners[listener_name]
    tls = getattr(listener, "TLS", None)
    if tls is None or not tls.KeyCerts:
        return None
    first = tls.KeyCerts[0]
    ctx = server_ssl_context(config.resolve_path(first.CertFile), config.resolve_path(first.KeyFile))
    ctx.minimum_version = _MIN_VERSIONS.get(tls.MinVersion or "TLSv1.2", ssl.TLSVersion.TLSv1_2)
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx
