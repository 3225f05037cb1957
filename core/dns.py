"""DNS lookups for outgoing delivery: MX (RFC 5321 §5.1) and host addresses.

Why a wrapper: the queue needs answers in *delivery* terms (which hosts to try,
in which order, and whether a failure is worth retrying), not DNS terms. This
module turns dnspython's exceptions into one typed :class:`DNSError` with a
``permanent`` flag, so the queue can decide between "delayed" and "failed"
without knowing dnspython.

dnspython's ``dns.asyncresolver`` detects trio through sniffio, so lookups run
natively on the trio event loop. dnspython is imported on first use (it is a
tenth of a second and a few MiB that a server which has not looked anything
up yet does without). Tests point the resolver at a local responder
(``tests/support/dnsresponder.py``) via ``nameservers`` and ``port``.

Error texts (stable, used in queue results and webhooks):

* null MX: ``domain does not accept email as indicated with single dot for mx
  record`` (mox's wording), permanent.
* NXDOMAIN for the recipient domain: ``recipient domain <d> does not exist``,
  permanent.
* no MX and no A/AAAA for an existing domain: ``recipient domain <d> has no mx
  record and no a/aaaa records``, permanent.
* timeouts: ``dns lookup error: mx lookup for <d>: i/o timeout``, temporary.
* SERVFAIL/REFUSED/unreachable servers: ``dns lookup error: mx lookup for <d>:
  server failure``, temporary.
* host without addresses (explicit MX target): ``looking up "<h>.": no such
  host``, temporary (``not_found`` is set) – an MX target can be fixed by the
  domain owner before the retries run out, as mox does.
"""

from __future__ import annotations

import ipaddress
import os
import random
from dataclasses import dataclass, field

import trio

__all__ = [
    "DNSError",
    "MXHost",
    "MXResult",
    "Resolver",
    "parse_ip_literal",
]

NULL_MX_ERROR = "domain does not accept email as indicated with single dot for mx record"


class DNSError(Exception):
    """A DNS lookup failed in a way that matters for delivery.

    ``permanent`` tells the queue whether retrying can help (NXDOMAIN, null MX)
    or not (timeouts, server failures). ``not_found`` is set when the name or
    record type does not exist, so callers can distinguish "nothing there" from
    "could not ask".
    """

    def __init__(self, message: str, *, permanent: bool, not_found: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.permanent = permanent
        self.not_found = not_found
        self.negative_ttl = 0  # NXDOMAIN: how long "does not exist" may be cached

    def __str__(self) -> str:
        return self.message


@dataclass
class MXHost:
    """One delivery destination. ``ips`` is filled only when already known
    (IP-literal domains and implicit MX), else the caller uses lookup_ips."""

    host: str
    preference: int
    ips: list[str] = field(default_factory=list)


@dataclass
class MXResult:
    """Hosts to try for a recipient domain, in the order to try them."""

    domain: str
    hosts: list[MXHost]
    implicit: bool = False  # no MX records: the domain itself is the host
    ip_literal: bool = False  # recipient domain was "[1.2.3.4]" / "[IPv6:...]"


def parse_ip_literal(domain: str) -> str | None:
    """Return the IP of an address literal like ``[1.2.3.4]`` or ``[IPv6:::1]``
    (RFC 5321 §4.1.3), or None if ``domain`` is not a literal.

    Raises DNSError (permanent) for a bracketed value that is not a valid IP:
    such a recipient can never be delivered to.
    """
    if not (domain.startswith("[") and domain.endswith("]")):
        return None
    inner = domain[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            return str(ipaddress.IPv6Address(inner[5:]))
        return str(ipaddress.IPv4Address(inner))
    except ValueError:
        raise DNSError(f"invalid ip address literal {domain}", permanent=True) from None


def _ascii_domain(domain: str) -> str:
    """Normalise a (possibly Unicode) domain to lower-case ASCII without the
    trailing dot; DNSError (permanent) for names DNS cannot represent."""
    import dns.exception
    import dns.name

    d = domain.strip().rstrip(".")
    if not d:
        raise DNSError("empty domain name", permanent=True)
    try:
        name = dns.name.from_text(d + ".")
    except (dns.exception.DNSException, UnicodeError) as e:
        raise DNSError(f"invalid domain name {domain!r}: {e}", permanent=True) from None
    return name.to_text(omit_final_dot=True).lower()


def _negative_ttl(responses: object) -> int:
    """The SOA-derived TTL of a negative answer (RFC 2308 §5), 0 without an SOA."""
    import dns.rdatatype

    for resp in responses:  # type: ignore[attr-defined]
        for rrset in getattr(resp, "authority", []):
            if rrset.rdtype == dns.rdatatype.SOA and len(rrset):
                return int(min(rrset.ttl, rrset[0].minimum))
    return 0


NAMESERVERS_ENV = "MOXTRIO_NAMESERVERS"


def parse_nameservers(value: str) -> tuple[list[str], int]:
    """``"127.0.0.1:5353,127.0.0.2"`` -> (["127.0.0.1", "127.0.0.2"], 5353).

    dnspython's resolver takes one port for all servers, so the first port
    given is used for all; without a port it is 53. IPv6 addresses with a port
    are written in brackets (``[::1]:5353``).
    """
    servers: list[str] = []
    port: int | None = None
    for item in (v.strip() for v in value.split(",")):
        if not item:
            continue
        host, sep, p = item.rpartition(":") if item.startswith("[") or item.count(":") == 1 else ("", "", "")
        if not sep:
            host = item
        elif port is None:
            port = int(p)
        servers.append(host.strip("[]"))
    if not servers:
        raise ValueError(f"{NAMESERVERS_ENV}: no name server in {value!r}")
    return servers, port or 53


class Resolver:
    """Async resolver for delivery; wraps ``dns.asyncresolver.Resolver``.

    With ``nameservers=None`` the servers named in the environment variable
    ``MOXTRIO_NAMESERVERS`` are used when it is set (``ip[:port]``, comma
    separated, one port for all: a local caching resolver, or the test suite's
    loopback responder, so that no lookup leaves the machine), else the system
    configuration (/etc/resolv.conf); otherwise exactly the given servers on
    ``port``. ``timeout`` is per
    server try, ``lifetime`` bounds one whole lookup.
    """

    def __init__(
        self,
        nameservers: list[str] | None = None,
        *,
        port: int = 53,
        timeout: float = 5.0,
        lifetime: float = 15.0,
        prefer_ipv6: bool = False,
    ) -> None:
        import dns.asyncresolver

        if nameservers is None and os.environ.get(NAMESERVERS_ENV):
            nameservers, port = parse_nameservers(os.environ[NAMESERVERS_ENV])
        if nameservers is None:
            self._resolver = dns.asyncresolver.Resolver(configure=True)
        else:
            self._resolver = dns.asyncresolver.Resolver(configure=False)
            self._resolver.nameservers = list(nameservers)
        self._resolver.port = port
        self._resolver.timeout = timeout
        self._resolver.lifetime = lifetime
        self.prefer_ipv6 = prefer_ipv6

    async def _query(self, name: str, rdtype: str, what: str) -> list[object]:
        """Resolve ``name`` (absolute) and return the rdata list.

        An empty list means NODATA (the name exists without such records).
        NXDOMAIN raises DNSError with not_found=True (permanent is decided by
        the caller); timeouts and server failures raise temporary DNSErrors.
        """
        return (await self._answer(name, rdtype, what))[0]

    async def _answer(self, name: str, rdtype: str, what: str) -> tuple[list[object], int]:
        """:meth:`_query` plus how long the answer may be kept (see :meth:`records_ttl`)."""
        import dns.exception
        import dns.resolver

        try:
            answer = await self._resolver.resolve(
                name + ".", rdtype, search=False, raise_on_no_answer=False
            )
        except dns.resolver.NXDOMAIN as exc:
            err = DNSError(f'looking up "{name}.": no such host', permanent=False, not_found=True)
            err.negative_ttl = _negative_ttl(exc.responses().values())
            raise err from None
        except dns.resolver.NoAnswer:
            return [], 0
        except dns.exception.Timeout:
            raise DNSError(
                f"dns lookup error: {what} for {name}: i/o timeout", permanent=False
            ) from None
        except dns.resolver.NoNameservers:
            raise DNSError(
                f"dns lookup error: {what} for {name}: server failure", permanent=False
            ) from None
        except dns.exception.DNSException as e:
            raise DNSError(f"dns lookup error: {what} for {name}: {e}", permanent=False) from None
        if answer.rrset is None:
            return [], _negative_ttl([answer.response])
        return list(answer.rrset), int(answer.rrset.ttl)

    async def records(self, name: str, rdtype: str) -> list[object]:
        """The rdata of ``name``'s ``rdtype`` records; [] for NODATA.

        NXDOMAIN raises DNSError with ``not_found``; timeouts and server
        failures raise a temporary DNSError. For callers that interpret the
        records themselves (SPF, DKIM, DMARC).
        """
        return (await self.records_ttl(name, rdtype))[0]

    async def records_ttl(self, name: str, rdtype: str) -> tuple[list[object], int]:
        """Like :meth:`records`, with how long the answer may be kept (0: do not keep).

        Positive answers keep for their TTL; NODATA and NXDOMAIN for the
        SOA minimum the server sent along (RFC 2308), or not at all.
        """
        return await self._answer(name.rstrip("."), rdtype, f"{rdtype.lower()} lookup")

    async def lookup_mx(self, domain: str) -> MXResult:
        """Hosts to deliver mail for ``domain`` to, following RFC 5321 §5.1.

        MX hosts are ordered by preference, shuffled among equal preference.
        No MX records: the domain itself is the (implicit) host, and its
        addresses are resolved right away so a domain without any mail
        destination fails permanently here.
        """
        ip = parse_ip_literal(domain)
        if ip is not None:
            return MXResult(
                domain=domain, hosts=[MXHost(host=ip, preference=0, ips=[ip])], ip_literal=True
            )
        name = _ascii_domain(domain)
        try:
            records = await self._query(name, "MX", "mx lookup")
        except DNSError as e:
            if e.not_found:
                raise DNSError(
                    f"recipient domain {name} does not exist", permanent=True, not_found=True
                ) from None
            raise

        mxs: list[tuple[int, str]] = []
        for rr in records:
            exchange = rr.exchange.to_text(omit_final_dot=True).lower()  # type: ignore[attr-defined]
            mxs.append((int(rr.preference), exchange))  # type: ignore[attr-defined]

        # Null MX (RFC 7505): a single record with target ".".
        if len(mxs) == 1 and mxs[0][1] in ("", "."):
            raise DNSError(NULL_MX_ERROR, permanent=True)
        mxs = [(p, h) for p, h in mxs if h not in ("", ".")]

        if mxs:
            rnd = random.Random()
            keyed = [(p, rnd.random(), h) for p, h in mxs]
            keyed.sort()
            return MXResult(domain=name, hosts=[MXHost(host=h, preference=p) for p, _, h in keyed])

        # No MX records: implicit MX, the domain itself (RFC 5321 §5.1).
        try:
            ips = await self.lookup_ips(name)
        except DNSError as e:
            if e.not_found:
                raise DNSError(
                    f"recipient domain {name} has no mx record and no a/aaaa records",
                    permanent=True,
                    not_found=True,
                ) from None
            raise
        return MXResult(
            domain=name, hosts=[MXHost(host=name, preference=0, ips=ips)], implicit=True
        )

    async def lookup_ips(self, host: str) -> list[str]:
        """A and AAAA addresses of ``host`` (looked up concurrently).

        IPv4 first unless ``prefer_ipv6``. Returns whatever was found if one
        family failed; raises DNSError (temporary; not_found when the host has
        no addresses at all) otherwise. An IP address (or literal) is returned
        as is.
        """
        literal = parse_ip_literal(host)
        if literal is not None:
            return [literal]
        try:
            return [str(ipaddress.ip_address(host))]
        except ValueError:
            pass
        name = _ascii_domain(host)
        results: dict[str, list[str]] = {}
        errors: dict[str, DNSError] = {}

        async def one(rdtype: str) -> None:
            try:
                rrs = await self._query(name, rdtype, "ip lookup")
                results[rdtype] = [rr.address for rr in rrs]  # type: ignore[attr-defined]
            except DNSError as e:
                errors[rdtype] = e

        async with trio.open_nursery() as nursery:
            nursery.start_soon(one, "A")
            nursery.start_soon(one, "AAAA")

        order = ["AAAA", "A"] if self.prefer_ipv6 else ["A", "AAAA"]
        ips = [ip for t in order for ip in results.get(t, [])]
        if ips:
            return ips
        for t in order:
            e = errors.get(t)
            if e is not None and not e.not_found:
                raise e
        raise DNSError(f'looking up "{name}.": no such host', permanent=False, not_found=True)
