"""All authentication of one incoming message, as mox's SMTP server does it on delivery.

:func:`authenticate` runs iprev, SPF, DKIM and the DMARC record lookup
concurrently (each bounded by its own timeout), then evaluates DMARC and
mox's ``MsgFromValidated`` from their results. The returned
:class:`Authentication` renders the ``Authentication-Results`` and
``Received-SPF`` headers and carries the fields that go into the message's
metadata and the incoming webhook.

Nothing here raises for DNS trouble: a failed or slow lookup is a
``temperror`` result (a timeout cancels the lookup and counts as one).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from core.mailauth import dkimverify, dmarc, spf
from core.mailauth.authres import AuthMethod, AuthProp, AuthResults
from core.mailauth.hosts import hosts
from core.mailauth.ips import is_ip, parse_ip
from core.mailauth.lookup import Lookup, NotCached, ResolverLookup, TempError

log = logging.getLogger("moxtrio.mailauth")

#: Upper bound for each check; mox uses a minute per check.
CHECK_TIMEOUT = 60.0
WITHOUT_DNSSEC = "without dnssec"


@dataclass
class Inputs:
    """What the SMTP session knows when DATA has been received."""

    remote_ip: str
    helo: str  # EHLO/HELO argument as given: a name or an address literal
    mail_from_localpart: str
    mail_from_domain: str  # "" for the null sender or an IP literal
    msg_from_domain: str  # the From header's domain, "" when there is no single From address
    hostname: str
    path: str
    size: int
    #: DKIM signatures by ``d=localhost`` are verified (core.services.OwnDomainAnswers).
    localhost_domain: bool = False
    data: bytes | None = None  # the whole message when the caller already read it


@dataclass
class Authentication:
    """The results, and what mox derives from them."""

    hostname: str
    remote_ip: str
    iprev: str
    iprev_name: str
    spf: spf.Received
    dkim: list[dkimverify.Result]
    dkim_error: str
    msg_from_domain: str
    dmarc: dmarc.Result | None
    mail_from_validated: bool = False
    msg_from_validated: bool = False
    msg_from_validation: str = "none"  # strict / relaxed / dmarc / none
    dkim_domains: list[str] = field(default_factory=list)

    @property
    def dmarc_reject(self) -> bool:
        """DMARC failed and the domain's policy (as sampled by pct=) asks for rejection."""
        return self.dmarc is not None and self.dmarc.use and self.dmarc.reject

    @property
    def spf_identity(self) -> str | None:
        if self.spf.identity in ("mailfrom", "helo"):
            return self.spf.domain
        return None

    def auth_results(self) -> bytes:
        """mox's Authentication-Results header for this message."""
        methods = [AuthMethod("iprev", self.iprev, WITHOUT_DNSSEC, props=[
            AuthProp("policy", "iprev", self.remote_ip)])]
        if self.dkim_error:
            methods.append(AuthMethod("dkim", "none", reason=self.dkim_error))
        elif not self.dkim:
            methods.append(AuthMethod("dkim", "none", reason="no dkim signatures"))
        for r in self.dkim:
            comment = ""
            props: list[AuthProp] = []
            if r.sig is not None:
                if r.record is not None and r.record.rsa_bits:
                    comment = f"{r.record.rsa_bits} bit rsa, "
                comment += WITHOUT_DNSSEC
                b = base64.b64encode(r.sig.signature).decode()[:12]
                props = [
                    AuthProp("header", "d", r.sig.domain, True),
                    AuthProp("header", "s", r.sig.selector, True),
                    AuthProp("header", "a", r.sig.algorithm),
                    AuthProp("header", "b", b),
                ]
                if r.sig.identity is not None:
                    props.append(AuthProp("header", "i", r.sig.identity, True))
            methods.append(AuthMethod("dkim", r.status, comment, r.error, props))
        identity = self.spf_identity
        methods.append(AuthMethod(
            "spf", self.spf.result, WITHOUT_DNSSEC,
            props=[AuthProp("smtp", self.spf.identity, identity, True)] if identity else [],
        ))
        if self.dmarc is None:
            methods.append(AuthMethod("dmarc", "none"))
        else:
            comment = WITHOUT_DNSSEC
            if self.dmarc.record is not None and not self.dmarc.use:
                comment += ", override sampled_out"
            methods.append(AuthMethod("dmarc", self.dmarc.status, comment, props=[
                AuthProp("header", "from", self.msg_from_domain, True)]))
        return AuthResults(self.hostname, methods).header()

    def received_spf(self) -> bytes:
        return self.spf.header()


async def iprev(lookup: Lookup, ip: str) -> tuple[str, str]:
    """(status, verified name) of the reverse/forward check of ``ip`` (mox's iprev).

    The hosts file answers first, as for mox (see :mod:`core.mailauth.hosts`).
    """
    addr = parse_ip(ip)
    by_ip, by_name = await hosts()
    try:
        names = by_ip.get(str(addr)) or await lookup.ptr(ip)
    except TempError:
        return "temperror", ""
    if not names:
        return "permerror", ""
    failed = False
    for name in names:
        try:
            ips = by_name.get(name.lower()) or await (
                lookup.a(name) if addr.version == 4 else lookup.aaaa(name))
        except TempError:
            failed = True
            continue
        if any(parse_ip(x) == addr for x in ips):
            return "pass", name
    return ("temperror" if failed else "fail"), ""


@dataclass
class _Collected:
    """What the concurrent checks found; None where a check timed out."""

    iprev: tuple[str, str] = ("temperror", "")
    spf: spf.Received | None = None
    dkim: list[dkimverify.Result] | None = None
    dkim_error: str = ""
    dmarc_policy: tuple[str, str, dmarc.Record | None, str] | None = None


def _helo_domain(helo: str) -> str:
    """The EHLO name when it is a domain; "" for an address literal."""
    if helo.startswith("[") or is_ip(helo):
        return ""
    return helo.lower().rstrip(".")


async def authenticate(
    lookup: Lookup, inp: Inputs, *, spf_lookup: Lookup | None = None,
    dkim_lookup: Lookup | None = None, check_timeout: float = CHECK_TIMEOUT,
) -> Authentication:
    """Run every check for one message (see module docstring).

    ``spf_lookup``/``dkim_lookup`` replace ``lookup`` for those checks
    (a server answering them for its own domains, core.services.OwnDomainAnswers).
    """
    out = _Collected()
    helo = _helo_domain(inp.helo)
    helo_arg = helo or inp.helo

    async def run_iprev(lk: Lookup) -> None:
        out.iprev = await iprev(lk, inp.remote_ip)

    async def run_spf(lk: Lookup) -> None:
        out.spf = await spf.verify(
            lk, remote_ip=inp.remote_ip,
            mail_from_localpart=inp.mail_from_localpart, mail_from_domain=inp.mail_from_domain,
            helo=helo_arg, receiver=inp.hostname,
        )

    async def run_dmarc_lookup(lk: Lookup) -> None:
        out.dmarc_policy = await dmarc.lookup_policy(lk, inp.msg_from_domain)

    # (check, its lookup, whether it may first run inline from cached answers)
    checks: list[tuple[Callable[[Lookup], Awaitable[None]], Lookup, bool]] = [
        (run_iprev, lookup, True), (run_spf, spf_lookup or lookup, spf_lookup is None)]
    if inp.msg_from_domain:
        checks.append((run_dmarc_lookup, lookup, True))

    # One deadline for all checks: when it passes, whatever has not finished
    # is a temperror, the rest keeps its result. DKIM runs in this task while
    # the DNS-bound checks run beside it.
    with trio.move_on_after(check_timeout):
        if isinstance(lookup, ResolverLookup):
            # Checks whose every answer is cached finish here, without a task
            # each; the others (a NotCached part-way) run again below.
            waiting = []
            for check, lk, inline in checks:
                try:
                    if not inline:
                        raise NotCached
                    await check(lookup.cached_only)
                except NotCached:
                    waiting.append((check, lk, inline))
            checks = waiting

        async def run_dkim() -> None:
            try:
                out.dkim = await dkimverify.verify_file(
                    dkim_lookup or lookup, inp.path, size=inp.size, data=inp.data,
                    policy=dkimverify.mox_policy, localhost_domain=inp.localhost_domain,
                )
            except dkimverify.MalformedMessage as exc:
                out.dkim_error = f"dkim: mail message header is malformed: {exc}"

        if not checks:
            await run_dkim()
        else:
            async with trio.open_nursery() as nursery:
                for check, lk, _ in checks:
                    nursery.start_soon(check, lk)
                await run_dkim()

    iprev_status, iprev_name = out.iprev
    received = out.spf
    if received is None:
        received = spf.Received(
            spf.TEMPERROR, f"domain {inp.mail_from_domain or helo}", inp.remote_ip,
            f"{inp.mail_from_localpart or 'postmaster'}@{inp.mail_from_domain or helo}", helo_arg,
            inp.hostname, identity="mailfrom" if inp.mail_from_domain else "helo",
            problem="spf: timeout", domain=inp.mail_from_domain or helo,
        )
    dkim_results = out.dkim if out.dkim is not None else []
    dkim_error = out.dkim_error
    if out.dkim is None and not dkim_error:
        dkim_error = "dkim: verification timed out"
    auth = Authentication(
        hostname=inp.hostname, remote_ip=inp.remote_ip, iprev=iprev_status, iprev_name=iprev_name,
        spf=received, dkim=dkim_results, dkim_error=dkim_error,
        msg_from_domain=inp.msg_from_domain.lower(), dmarc=None,
    )
    auth.mail_from_validated = received.identity == "mailfrom" and received.result == spf.PASS
    seen: set[str] = set()
    for r in dkim_results:
        if r.status == dkimverify.PASS and r.sig is not None and r.sig.domain not in seen:
            seen.add(r.sig.domain)
            auth.dkim_domains.append(r.sig.domain)
    if inp.msg_from_domain:
        validation = dmarc.alignment(inp.msg_from_domain, dkim_results, received.result, auth.spf_identity)
        policy = out.dmarc_policy
        if policy is None:
            result = dmarc.Result(dmarc.TEMPERROR, error="dmarc: lookup timed out")
        else:
            status, domain, record, err = policy
            if record is None:
                result = dmarc.Result(status, domain=domain, error=err)
            else:
                result = dmarc.evaluate(inp.msg_from_domain, domain, record, dkim_results,
                                        received.result, auth.spf_identity)
        if result.status == dmarc.PASS and validation == "relaxed":
            validation = "dmarc"
        auth.dmarc = result
        auth.msg_from_validation = validation
        auth.msg_from_validated = validation in ("strict", "relaxed", "dmarc")
    return auth
