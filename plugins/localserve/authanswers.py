"""The development server answers the SPF and DKIM questions about its own domains itself.

As mox's localserve does: mail from a configured domain, delivered back to
the server from a loopback address (e.g. a webapi Send to a local address,
through the queue), gets an SPF record ``v=spf1 ip4:127.0.0.1/8 ip6:::1
~all`` for the From domain and DKIM key records made from the domain's
configured selectors, so it authenticates like mail from a real domain.
Like mox, the From header's domain decides (an approximation), and these
answers replace DNS entirely for those checks. mox also treats
``localhost`` as a mail domain in that mode (no DNS check of a MAIL FROM
``localhost``, DKIM signatures by ``d=localhost`` verified).

The core asks through :class:`core.services.OwnDomainAnswers`, which this
module provides.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from core.dkim import KEYS, DKIMError, PrivateKey
from core.mailauth.ips import parse_ip
from core.mailauth.lookup import Lookup, NoRecords, StaticLookup

LOOPBACK_SPF = "v=spf1 ip4:127.0.0.1/8 ip6:::1 ~all"


def key_record(key: PrivateKey, hash_name: str) -> str:
    """The DKIM TXT record publishing ``key``'s public half."""
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; h={hash_name}; k=ed25519; p={base64.b64encode(raw).decode()}"
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    return f"v=DKIM1; h={hash_name}; p={base64.b64encode(der).decode()}"


class LocalAuthAnswers:
    """:class:`core.services.OwnDomainAnswers` for the development server."""

    localhost_is_mail_domain = True

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx

    async def lookups(self, msg_from_domain: str, remote_ip: str) -> tuple[Lookup | None, Lookup | None]:
        """(spf lookup, dkim lookup) to use instead of DNS, or None where DNS applies."""
        if not msg_from_domain:
            return None, None
        domain_conf = self.ctx.config.domain(msg_from_domain)
        if domain_conf is None:
            return None, None
        ascii_domain = msg_from_domain.lower().rstrip(".")
        spf_lookup: Lookup | None = None
        if parse_ip(remote_ip).is_loopback:
            spf_lookup = StaticLookup({ascii_domain: [LOOPBACK_SPF]}, NoRecords())
        dkim_lookup: Lookup | None = None
        selectors = domain_conf.DKIM.Selectors
        if selectors:
            paths = {name: Path(self.ctx.config.resolve_path(sel.PrivateKeyFile)) for name, sel in selectors.items()}

            def load(get: Any) -> dict[str, list[str]]:
                return {
                    f"{name}._domainkey.{ascii_domain}": [key_record(get(path), selectors[name].hash)]
                    for name, path in paths.items()
                }

            # As the signer does: one stat() per key on the trio thread when the
            # keys are cached, a worker thread to load them otherwise.
            cached = {path: KEYS.cached(path) for path in paths.values()}
            try:
                if all(k is not None for k in cached.values()):
                    records = load(cached.__getitem__)
                else:
                    records = await trio.to_thread.run_sync(load, KEYS.load)
            except DKIMError:
                records = {}
            dkim_lookup = StaticLookup(records, NoRecords())
        return spf_lookup, dkim_lookup
