"""Authentication on the SMTP delivery path: what the delivery listener asks and adds.

* :func:`mail_from_domain_check`: MAIL FROM's domain must be able to receive
  mail (an MX with an address, or an address for the domain itself, and no
  null MX), as mox checks before accepting a sender; temporary DNS trouble
  is a temporary refusal.
* :func:`authenticate_incoming`: SPF, DKIM, DMARC for a received message,
  the ``moxtrio_incoming_authenticated`` verdict, and mox's default (reject
  a DMARC failure whose policy asks for it).
* :func:`delivery_prefix`: the headers mox prepends to each delivered copy:
  ``Delivered-To``, ``Return-Path``, ``Authentication-Results``,
  ``Received-SPF`` and a ``Received`` header in mox's layout.
* :func:`strip_forged_auth_results`: incoming ``Authentication-Results``
  headers that claim our hostname are removed before ours is added.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import UTC, datetime
from typing import Any

import trio

from core.address import domain_to_ascii
from core.dispatch import HookFailed
from core.events import IncomingAuthenticated
from core.mailauth import orgdomain
from core.mailauth.analyze import Authentication, Inputs, authenticate
from core.mailauth.authres import claims_authserv_id
from core.mailauth.canon import file_body, parse_header_section, read_header_section
from core.mailauth.headerwriter import HeaderWriter
from core.mailauth.ips import parse_ip
from core.mailauth.lookup import ResolverLookup, TempError
from core.plugin_api import Rejection
from core.services import OwnDomainAnswers

log = logging.getLogger("moxtrio.mailauth")

#: mox's bound on the MAIL FROM domain check.
MAIL_FROM_CHECK_TIMEOUT = 60.0

#: OpenSSL's TLS 1.2 cipher names in the IANA form mox (Go) writes in Received.
_IANA_CIPHERS = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256": "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384": "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305": "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-RSA-CHACHA20-POLY1305": "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-SHA": "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA",
    "ECDHE-RSA-AES128-SHA": "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA",
    "ECDHE-ECDSA-AES256-SHA": "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA",
    "ECDHE-RSA-AES256-SHA": "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA",
}


def shared_lookup(ctx: Any) -> ResolverLookup:
    """The server's authentication lookups: its resolver service, with an answer cache.

    Without a resolver given to the server the system's resolver is used.
    """
    lookup = ctx.core.mailauth_lookup
    if lookup is None:
        lookup = ctx.core.mailauth_lookup = ResolverLookup(ctx.resolver)
    return lookup  # type: ignore[no-any-return]


# -- MAIL FROM --------------------------------------------------------------------------------


async def _accepts_mail(lookup: ResolverLookup, domain: str) -> bool:
    """mox's checkMXRecords: True/False; TempError when it cannot tell."""
    hosts = [h for _, h in await lookup.mx(domain)]
    if len(hosts) == 1 and hosts[0] in ("", "."):
        return False  # null MX (RFC 7505)
    last: TempError | None = None
    for host in hosts or [domain]:
        try:
            # Any address will do: AAAA is only asked when there is no A.
            if await lookup.a(host) or await lookup.aaaa(host):
                return True
        except TempError as exc:
            last = exc
    if last is not None:
        raise last
    return False


async def mail_from_domain_check(ctx: Any, domain: str) -> Rejection | None:
    """Refuse a MAIL FROM domain that cannot receive mail (see module docstring)."""
    if not domain or domain.startswith("["):
        return None
    try:
        domain = domain_to_ascii(domain)
    except (ValueError, UnicodeError):
        return Rejection(550, "5.7.27", "mailfrom domain not configured for mail")
    own = ctx.service(OwnDomainAnswers)
    if own is not None and own.localhost_is_mail_domain and domain.lower().rstrip(".") == "localhost":
        return None  # as mox's local mode: localhost may not resolve through DNS there
    try:
        with trio.fail_after(MAIL_FROM_CHECK_TIMEOUT):
            ok = await _accepts_mail(shared_lookup(ctx), domain)
    except (TempError, trio.TooSlowError) as exc:
        log.info("temporary reject for temporary mx lookup error for %s: %s", domain, exc)
        return Rejection(451, "4.4.0", "cannot verify mx records for mailfrom domain")
    if not ok:
        log.info("permanent reject because mailfrom domain %s does not accept mail", domain)
        return Rejection(550, "5.7.27", "mailfrom domain not configured for mail")
    return None


# -- authentication + verdict ------------------------------------------------------------------


async def authenticate_incoming(
    ctx: Any, *, inputs: Inputs, mail_from: str, recipients: list[str],
) -> tuple[Authentication, list[str]] | Rejection:
    """Authenticate, then let plugins (or mox's default) decide; extra header lines on accept."""
    await orgdomain.ensure_loaded()
    own = ctx.service(OwnDomainAnswers)
    spf_lookup, dkim_lookup = (None, None) if own is None else await own.lookups(inputs.msg_from_domain,
                                                                               inputs.remote_ip)
    auth = await authenticate(shared_lookup(ctx), inputs,
                              spf_lookup=spf_lookup, dkim_lookup=dkim_lookup)
    event = IncomingAuthenticated(remote_ip=inputs.remote_ip, mail_from=mail_from,
                                  recipients=recipients, auth=auth)
    try:
        rej = await ctx.hooks.first("moxtrio_incoming_authenticated", ctx=ctx, message=event)
    except HookFailed as exc:
        log.error("%s", exc)
        return Rejection(451, "4.3.0", "error processing")
    if rej is not None:
        return rej  # type: ignore[no-any-return]
    if auth.dmarc_reject:
        log.info("rejecting per dmarc policy: from domain %s", auth.msg_from_domain)
        return Rejection(550, "5.7.26", "rejecting per dmarc policy")
    return auth, event.add_headers


# -- headers -------------------------------------------------------------------------------------


def _address_literal(ip: str) -> str:
    addr = parse_ip(ip)
    return f"[IPv6:{addr}]" if addr.version == 6 else f"[{addr}]"


def tls_comment(version: str, cipher: str) -> list[str]:
    """mox's ``(TLS1.3 TLS_AES_128_GCM_SHA256)`` tokens for a TLS connection."""
    v = version.replace("TLSv", "TLS")
    return [f"({v}", f"{_IANA_CIPHERS.get(cipher, cipher)})"]


def received_header(
    *, helo: str, remote_ip: str, iprev_name: str, hostname: str, local_ip: str, ehlo: bool,
    smtputf8: bool, tls: bool, tls_version: str, tls_cipher: str, conn_id: str, rcpt_to: str,
    requiretls: bool = False, now: datetime | None = None,
) -> bytes:
    """A ``Received:`` header in mox's layout for mail arriving on the delivery listener."""
    name = iprev_name.rstrip(".")
    recv_from = helo if helo else _address_literal(remote_ip)
    recv_from += " (" + (name + " " if name and name != helo else "") + _address_literal(remote_ip) + ")"
    recv_by = f"{hostname} ({_address_literal(local_ip)})"
    with_ = "UTF8SMTP" if smtputf8 else "ESMTP" if ehlo else "SMTP"
    if tls:
        with_ += "S"
    if requiretls:
        with_ += " (requiretls)"
    w = HeaderWriter()
    w.add(" ", "Received:", "from", recv_from, "by", recv_by, "via", "tcp", "with", with_, "id", conn_id)
    if tls:
        w.add(" ", *tls_comment(tls_version, tls_cipher))
    if rcpt_to:
        w.add(" ", "for", f"<{rcpt_to}>;")
    when = now or datetime.now(UTC).astimezone()
    w.add(" ", f"{when.day} {when.strftime('%b %Y %H:%M:%S %z')}")
    return w.value().encode()


def delivery_prefix(
    auth_headers: bytes, extra: list[str], *, deliver_to: str, mail_from: str, received: bytes,
) -> bytes:
    """The headers prepended to one recipient's copy, in mox's order.

    ``auth_headers`` is ``auth.auth_results() + auth.received_spf()``, the
    same for every recipient (made once).
    """
    lines = "".join(h.rstrip("\r\n") + "\r\n" for h in extra)
    return (
        lines.encode()
        + f"Delivered-To: {deliver_to}\r\nReturn-Path: <{mail_from}>\r\n".encode()
        + auth_headers + received
    )


# -- forged Authentication-Results ------------------------------------------------------------


def _strip(path: str, hostname: str) -> int | None:
    with open(path, "rb") as f:
        head, rest = read_header_section(f)
        headers = parse_header_section(head)
        forged = [h for h in headers if h.lname == b"authentication-results"
                  and claims_authserv_id(h.raw.partition(b":")[2], hostname)]
        if not forged:
            return None
        keep = b"".join(h.raw for h in headers if not any(h is x for x in forged))
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".strip-")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(keep + b"\r\n")
                for chunk in file_body(f, rest):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
    return os.path.getsize(path)


async def strip_forged_auth_results(path: str, hostname: str) -> int | None:
    """Remove Authentication-Results headers naming ``hostname``; the new size, or None if none."""
    return await trio.to_thread.run_sync(_strip, path, hostname)
