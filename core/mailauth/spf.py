"""SPF (RFC 7208): may this IP send mail for this domain?

:func:`check_host` is the RFC's function: every mechanism and modifier,
macros, the limit of 10 DNS-querying terms and 2 void lookups, ``exp=``.
:func:`verify` is what the SMTP server calls: it picks the identity as mox
does (MAIL FROM's domain, or the EHLO name when MAIL FROM is empty) and
returns a :class:`Received` that renders mox's ``Received-SPF`` header.

The whole record is parsed before anything is evaluated, so a syntax error
anywhere is a permerror without DNS traffic for the terms before it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
import time
import urllib.parse
from dataclasses import dataclass, field

from core.mailauth.headerwriter import HeaderWriter
from core.mailauth.ips import is_ip, network, parse_ip
from core.mailauth.lookup import Lookup, TempError

NONE, NEUTRAL, PASS, FAIL, SOFTFAIL, TEMPERROR, PERMERROR = (
    "none", "neutral", "pass", "fail", "softfail", "temperror", "permerror",
)
MAX_DNS_TERMS = 10
MAX_VOID = 2
MAX_NAMES = 10  # MX hosts or PTR names considered per mechanism
MAX_DOMAIN = 253

_QUALIFIERS = {"+": PASS, "-": FAIL, "~": SOFTFAIL, "?": NEUTRAL}
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_MODIFIER = re.compile(r"^([A-Za-z][A-Za-z0-9_.-]*)=(.*)$", re.S)
_MACRO_DELIMS = ".-+,/_="
_TOPLABEL = re.compile(r"^(?=.*[A-Za-z])[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?$")


class PermError(Exception):
    """The record is invalid or a limit was exceeded."""


class _Temp(Exception):
    """A DNS failure during evaluation (temperror)."""


# -- parsing ------------------------------------------------------------------------------


@dataclass
class Directive:
    qualifier: str  # "" or one of + - ~ ?
    mechanism: str
    domain_spec: str = ""
    ip: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    ip_text: str = ""
    cidr4: int | None = None
    cidr6: int | None = None

    def text(self) -> str:
        """The term as mox reports it in Received-SPF's ``mechanism=``."""
        s = self.qualifier + self.mechanism
        if self.domain_spec:
            s += ":" + self.domain_spec
        elif self.ip_text:
            s += ":" + self.ip_text
        if self.cidr4 is not None:
            s += f"/{self.cidr4}"
        if self.cidr6 is not None:
            s += ("" if self.mechanism == "ip6" else "/") + f"/{self.cidr6}"
        return s


@dataclass
class Record:
    directives: list[Directive] = field(default_factory=list)
    redirect: str | None = None
    exp: str | None = None


def _check_macro_string(s: str, *, domain: bool, text: bool = False) -> None:
    """Validate macro syntax (and, for a domain-spec, the domain-end)."""
    i = 0
    ends_with_macro = False
    while i < len(s):
        c = s[i]
        if not (0x21 <= ord(c) <= 0x7E) and not (text and c == " "):
            raise PermError(f"invalid character in {s!r}")
        if c != "%":
            i += 1
            ends_with_macro = False
            continue
        nxt = s[i + 1:i + 2]
        if nxt in ("%", "_", "-"):
            i += 2
            ends_with_macro = False
            continue
        m = re.match(r"\{([slodiphcrtvSLODIPHCRTV])([0-9]*)(r?)([.\-+,/_=]*)\}", s[i + 1:], re.I)
        if m is None or (m.group(2) and int(m.group(2)) == 0):
            raise PermError(f"invalid macro in {s!r}")
        if not text and m.group(1).lower() in "crt":
            raise PermError(f"macro letter {m.group(1)!r} only allowed in explanations")
        i += 1 + m.end()
        ends_with_macro = True
    if domain and not ends_with_macro:
        labels = s.rstrip(".").split(".") if s.endswith(".") else s.split(".")
        if len(labels) < 2 or not _TOPLABEL.match(labels[-1]):
            raise PermError(f"invalid domain-spec {s!r}")


def _cidr(text: str, maximum: int) -> int:
    if not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        raise PermError(f"invalid cidr length {text!r}")
    n = int(text)
    if n > maximum:
        raise PermError(f"cidr length {n} too large")
    return n


def _split_dual_cidr(rest: str) -> tuple[str, int | None, int | None]:
    cidr4 = cidr6 = None
    m = re.search(r"(?:/([0-9]+))?(?://([0-9]+))?$", rest)
    if m and m.group(0):
        if m.group(1) is not None:
            cidr4 = _cidr(m.group(1), 32)
        if m.group(2) is not None:
            cidr6 = _cidr(m.group(2), 128)
        rest = rest[: m.start()]
    return rest, cidr4, cidr6


@functools.lru_cache(maxsize=1024)
def parse_record(txt: str) -> Record:
    """Parse a ``v=spf1`` record; :class:`PermError` on any syntax error.

    Cached by text (a sender's record is parsed once); the returned record
    is shared and must not be modified.
    """
    terms = txt.split(" ")
    if terms[0].lower() != "v=spf1":
        raise PermError("not an spf record")
    rec = Record()
    for term in terms[1:]:
        if not term:
            continue
        if any(not (0x21 <= ord(c) <= 0x7E) for c in term):
            raise PermError(f"invalid character in term {term!r}")
        qualifier = term[0] if term[0] in _QUALIFIERS else ""
        body = term[len(qualifier):]
        name = re.match(r"^[A-Za-z][A-Za-z0-9_.-]*", body)
        mech = name.group(0).lower() if name else ""
        after = body[len(mech):]
        if not qualifier and after.startswith("=") and name:
            key = mech
            value = after[1:]
            if key in ("redirect", "exp"):
                if getattr(rec, key) is not None:
                    raise PermError(f"duplicate {key} modifier")
                _check_macro_string(value, domain=True)
                setattr(rec, key, value)
            else:
                _check_macro_string(value, domain=False)
            continue
        if mech not in _MECHANISMS:
            raise PermError(f"unknown mechanism {term!r}")
        d = Directive(qualifier, mech)
        if mech == "all":
            if after:
                raise PermError(f"invalid term {term!r}")
        elif mech in ("include", "exists"):
            if not after.startswith(":") or len(after) < 2:
                raise PermError(f"{mech} needs a domain: {term!r}")
            d.domain_spec = after[1:]
            _check_macro_string(d.domain_spec, domain=True)
        elif mech in ("a", "mx", "ptr"):
            rest = after
            if mech != "ptr":
                rest, d.cidr4, d.cidr6 = _split_dual_cidr(rest)
            if rest:
                if not rest.startswith(":") or len(rest) < 2:
                    raise PermError(f"invalid term {term!r}")
                d.domain_spec = rest[1:]
                _check_macro_string(d.domain_spec, domain=True)
        else:  # ip4, ip6
            if not after.startswith(":"):
                raise PermError(f"{mech} needs an address: {term!r}")
            addr, _, plen = after[1:].partition("/")
            try:
                if mech == "ip4":
                    ipaddress.IPv4Address(addr)
                    d.cidr4 = _cidr(plen, 32) if plen else None
                    d.ip = ipaddress.IPv4Network(f"{addr}/{d.cidr4 if d.cidr4 is not None else 32}", strict=False)
                else:
                    ipaddress.IPv6Address(addr)
                    d.cidr6 = _cidr(plen, 128) if plen else None
                    d.ip = ipaddress.IPv6Network(f"{addr}/{d.cidr6 if d.cidr6 is not None else 128}", strict=False)
            except ValueError:
                raise PermError(f"invalid address in {term!r}") from None
            d.ip_text = addr
        rec.directives.append(d)
    return rec


# -- evaluation ---------------------------------------------------------------------------


@dataclass
class Args:
    """The inputs of check_host, plus the counters shared by nested evaluations."""

    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    sender_localpart: str
    sender_domain: str
    helo: str
    receiver: str = "unknown"
    dns_terms: list[int] = field(default_factory=lambda: [0])
    void: list[int] = field(default_factory=lambda: [0])


@dataclass
class Outcome:
    status: str
    mechanism: str = ""
    explanation: str = ""
    problem: str = ""


def _client_ip(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    addr = parse_ip(ip)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def _valid_domain(domain: str, *, single_label: bool = False) -> bool:
    d = domain.rstrip(".")
    labels = d.split(".")
    return (
        (len(labels) >= 2 or single_label) and len(d) <= MAX_DOMAIN
        and all(0 < len(label) <= 63 for label in labels)
    )


class _Evaluator:
    def __init__(self, lookup: Lookup, args: Args) -> None:
        self.lookup = lookup
        self.args = args

    # -- dns with limits

    def _count_term(self) -> None:
        self.args.dns_terms[0] += 1
        if self.args.dns_terms[0] > MAX_DNS_TERMS:
            raise PermError("too many dns-querying terms")

    def _void(self, records: list) -> list:  # type: ignore[type-arg]
        if not records:
            self.args.void[0] += 1
            if self.args.void[0] > MAX_VOID:
                raise PermError("too many void lookups")
        return records

    async def _ask(self, coro):  # type: ignore[no-untyped-def]
        try:
            return await coro
        except TempError as exc:
            raise _Temp(str(exc)) from None

    async def _ips(self, name: str, *, void: bool = True) -> list[str]:
        if not _valid_domain(name):
            return self._void([]) if void else []
        ip = self.args.ip
        if isinstance(ip, ipaddress.IPv4Address):
            recs = await self._ask(self.lookup.a(name))
        else:
            recs = await self._ask(self.lookup.aaaa(name))
        return self._void(recs) if void else recs

    # -- macros

    def expand(self, spec: str, domain: str, *, exp: bool = False, ptr_name: str = "unknown") -> str:
        out: list[str] = []
        i = 0
        a = self.args
        while i < len(spec):
            c = spec[i]
            if c != "%":
                out.append(c)
                i += 1
                continue
            nxt = spec[i + 1:i + 2]
            if nxt == "%":
                out.append("%")
                i += 2
                continue
            if nxt == "_":
                out.append(" ")
                i += 2
                continue
            if nxt == "-":
                out.append("%20")
                i += 2
                continue
            m = re.match(r"\{([a-zA-Z])([0-9]*)(r?)([.\-+,/_=]*)\}", spec[i + 1:], re.I)
            if m is None:
                raise PermError(f"invalid macro in {spec!r}")
            letter, digits, rev, delims = m.group(1), m.group(2), m.group(3), m.group(4)
            lower = letter.lower()
            ip = a.ip
            value: str
            if lower == "s":
                value = f"{a.sender_localpart}@{a.sender_domain}"
            elif lower == "l":
                value = a.sender_localpart
            elif lower == "o":
                value = a.sender_domain
            elif lower == "d":
                value = domain
            elif lower == "i":
                if isinstance(ip, ipaddress.IPv4Address):
                    value = str(ip)
                else:
                    value = ".".join(ip.exploded.replace(":", ""))
            elif lower == "p":
                value = ptr_name
            elif lower == "v":
                value = "in-addr" if isinstance(ip, ipaddress.IPv4Address) else "ip6"
            elif lower == "h":
                value = a.helo
            elif exp and lower == "c":
                value = str(ip)
            elif exp and lower == "r":
                value = a.receiver
            elif exp and lower == "t":
                value = str(int(time.time()))
            else:
                raise PermError(f"macro letter {letter!r} not allowed here")
            parts = re.split("[" + re.escape(delims or ".") + "]", value)
            if rev:
                parts.reverse()
            if digits:
                n = int(digits)
                if n == 0:
                    raise PermError("macro transformer 0")
                parts = parts[-n:]
            value = ".".join(parts)
            if letter.isupper():
                value = urllib.parse.quote(value, safe="")
            out.append(value)
            i += 1 + m.end()
        return "".join(out)

    def _target(self, spec: str, domain: str, ptr_name: str = "unknown") -> str:
        name = self.expand(spec, domain, ptr_name=ptr_name).rstrip(".")
        while len(name) > MAX_DOMAIN and "." in name:
            name = name.split(".", 1)[1]
        return name

    async def _validated_ptr(self, domain: str) -> str:
        """The ``%{p}`` value: a validated PTR name, preferring one under ``domain``."""
        try:
            names = (await self.lookup.ptr(str(self.args.ip)))[:MAX_NAMES]
        except TempError:
            return "unknown"
        valid: list[str] = []
        for name in names:
            try:
                ips = await self._ips(name, void=False)
            except _Temp:
                continue
            if str(self.args.ip) in [str(_client_ip(x)) for x in ips]:
                valid.append(name)
        for name in valid:
            if name.lower() == domain.lower() or name.lower().endswith("." + domain.lower()):
                return name
        return valid[0] if valid else "unknown"

    async def _needs_p(self, spec: str) -> bool:
        return bool(re.search(r"%\{p", spec, re.I))

    # -- mechanisms

    def _in(self, ips: list[str], cidr4: int | None, cidr6: int | None) -> bool:
        ip = self.args.ip
        for x in ips:
            try:
                addr = _client_ip(x)
            except ValueError:
                continue
            if addr.version != ip.version:
                continue
            plen = (cidr4 if cidr4 is not None else 32) if ip.version == 4 else (
                cidr6 if cidr6 is not None else 128)
            if ip in network(f"{addr}/{plen}"):
                return True
        return False

    async def _spec(self, d: Directive, domain: str) -> str:
        if not d.domain_spec:
            return domain
        ptr_name = await self._validated_ptr(domain) if await self._needs_p(d.domain_spec) else "unknown"
        return self._target(d.domain_spec, domain, ptr_name)

    async def matches(self, d: Directive, domain: str) -> bool | Outcome:
        mech = d.mechanism
        if mech == "all":
            return True
        if mech in ("ip4", "ip6"):
            assert d.ip is not None
            ip = self.args.ip
            return ip.version == d.ip.version and ip in d.ip
        self._count_term()
        target = await self._spec(d, domain)
        if mech == "a":
            return self._in(await self._ips(target), d.cidr4, d.cidr6)
        if mech == "exists":
            if not _valid_domain(target):
                self._void([])
                return False
            return bool(self._void(await self._ask(self.lookup.a(target))))
        if mech == "mx":
            if not _valid_domain(target):
                self._void([])
                return False
            mxs = self._void(await self._ask(self.lookup.mx(target)))
            if len(mxs) > MAX_NAMES:
                raise PermError("too many mx records")
            for _, host in mxs:
                if self._in(await self._ips(host), d.cidr4, d.cidr6):
                    return True
            return False
        if mech == "ptr":
            try:
                names = self._void(await self.lookup.ptr(str(self.args.ip)))
            except TempError:
                return False
            t = target.lower()
            for name in names[:MAX_NAMES]:
                n = name.lower().rstrip(".")
                if n != t and not n.endswith("." + t):
                    continue
                try:
                    ips = await self._ips(n, void=False)
                except _Temp:
                    continue
                if self._in(ips, None, None):
                    return True
            return False
        if mech == "include":
            sub = await self.check(target)
            if sub.status == PASS:
                return True
            if sub.status in (FAIL, SOFTFAIL, NEUTRAL):
                return False
            if sub.status == TEMPERROR:
                return sub
            return Outcome(PERMERROR, d.text(), problem=sub.problem or "include without spf record")
        raise PermError(f"unknown mechanism {mech}")

    async def _explanation(self, rec: Record, domain: str) -> str:
        if rec.exp is None:
            return ""
        try:
            target = self._target(rec.exp, domain)
            txts = await self.lookup.txt(target) if _valid_domain(target) else []
            if len(txts) != 1:
                return ""
            text = txts[0]
            _check_macro_string(text, domain=False, text=True)
            ptr_name = await self._validated_ptr(domain) if await self._needs_p(text) else "unknown"
            return self.expand(text, domain, exp=True, ptr_name=ptr_name)
        except (TempError, PermError, _Temp):
            return ""

    async def check(self, domain: str) -> Outcome:
        domain = domain.rstrip(".")
        # Like mox, a single-label name (localhost) is checked; malformed names are not.
        if not _valid_domain(domain, single_label=True):
            return Outcome(NONE, problem=f"invalid domain {domain!r}")
        try:
            txts = await self.lookup.txt(domain)
        except TempError as exc:
            return Outcome(TEMPERROR, problem=f"spf: lookup of dns record: {domain}.: {exc}")
        if not txts:
            return Outcome(NONE, problem=f"spf: no txt record for {domain}.")
        spfs = [t for t in txts if t.lower() == "v=spf1" or t.lower().startswith("v=spf1 ")]
        if not spfs:
            return Outcome(NONE, problem="spf: no txt record")
        if len(spfs) > 1:
            return Outcome(PERMERROR, problem=f"multiple spf records for {domain}")
        try:
            rec = parse_record(spfs[0])
            for d in rec.directives:
                m = await self.matches(d, domain)
                if isinstance(m, Outcome):
                    return m
                if not m:
                    continue
                status = _QUALIFIERS.get(d.qualifier or "+", PASS)
                expl = await self._explanation(rec, domain) if status == FAIL else ""
                return Outcome(status, d.text(), explanation=expl)
            if rec.redirect is not None:
                self._count_term()
                target = self._target(rec.redirect, domain)
                sub = await self.check(target)
                if sub.status == NONE:
                    return Outcome(PERMERROR, sub.mechanism, problem=sub.problem or "redirect without spf record")
                return sub
            return Outcome(NEUTRAL, "default")
        except PermError as exc:
            return Outcome(PERMERROR, problem=str(exc))
        except _Temp as exc:
            return Outcome(TEMPERROR, problem=str(exc))


async def check_host(
    lookup: Lookup, ip: str, domain: str, sender: str, helo: str = "", receiver: str = "unknown",
) -> Outcome:
    """RFC 7208 check_host() for ``ip`` and ``domain``; ``sender`` is ``localpart@domain``."""
    localpart, _, sdomain = sender.rpartition("@")
    args = Args(_client_ip(ip), localpart or "postmaster", sdomain or domain, helo, receiver)
    return await _Evaluator(lookup, args).check(domain)


# -- what the SMTP server uses --------------------------------------------------------------


#: A dot-atom's characters (atext, non-ASCII allowed as mox does, and dots).
_DOT_ATOM_CHARS = re.compile(r"[A-Za-z0-9!#$%&'*+\-/=?^_`{|}~.\u0080-\U0010ffff]+")
#: Dropped from quoted strings: controls other than tab, and DEL.
_UNQUOTABLE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_QUOTE_SPECIAL = re.compile(r'(["\\])')


def _received_value(s: str) -> str:
    """A Received-SPF value as mox writes it: a dot-atom as is, else a quoted string.

    A dot-atom has no dot at either end (dots inside may repeat, as mox allows).
    """
    if s and s[0] != "." and s[-1] != "." and _DOT_ATOM_CHARS.fullmatch(s):
        return s
    return _quoted(s)


def _quoted(s: str) -> str:
    return '"' + _QUOTE_SPECIAL.sub(r"\\\1", _UNQUOTABLE.sub("", s)) + '"'


@dataclass
class Received:
    """An SPF verdict as it goes into ``Received-SPF`` and Authentication-Results."""

    result: str
    comment: str
    client_ip: str
    envelope_from: str
    helo: str
    receiver: str
    identity: str = ""  # "mailfrom", "helo", or "" when nothing was checked
    mechanism: str = ""
    problem: str = ""
    domain: str = ""  # the domain that was checked
    explanation: str = ""

    def header(self) -> bytes:
        """mox's ``Received-SPF:`` header line(s), CRLF-terminated."""
        w = HeaderWriter()
        w.add("", "Received-SPF: " + self.result)
        if self.comment:
            w.add(" ", f"({self.comment})")
        w.add(" ", f"client-ip={_received_value(self.client_ip)};")
        w.add(" ", f"envelope-from={_received_value(self.envelope_from)};")
        w.add(" ", f"helo={_received_value(self.helo)};")
        if self.problem:
            w.add(" ", f"problem={_received_value(self.problem[: 77 - len('problem=; ')])};")
        if self.mechanism:
            w.add(" ", f"mechanism={_received_value(self.mechanism)};")
        w.add(" ", f"receiver={_received_value(self.receiver)};")
        w.add(" ", f"identity={_received_value(self.identity)}")
        return w.value().encode()


def _is_ip(s: str) -> bool:
    return is_ip(s.strip("[]").removeprefix("IPv6:").removeprefix("ipv6:"))


async def verify(
    lookup: Lookup, *, remote_ip: str, mail_from_localpart: str, mail_from_domain: str,
    helo: str, receiver: str,
) -> Received:
    """SPF for an SMTP transaction, as mox's ``spf.Verify``.

    MAIL FROM's domain is checked; with an empty MAIL FROM, the EHLO name
    (sender ``postmaster@<helo>``); an EHLO IP literal with empty MAIL FROM
    gives ``none`` without DNS.
    """
    helo_text = helo.strip("[]").removeprefix("IPv6:").removeprefix("ipv6:") if _is_ip(helo) else helo
    if mail_from_domain:
        localpart, domain, identity = mail_from_localpart, mail_from_domain, "mailfrom"
    elif helo and not _is_ip(helo):
        localpart, domain, identity = "postmaster", helo, "helo"
    else:
        return Received(
            NONE, "no domain, ehlo is an ip literal and mailfrom is empty", remote_ip,
            f"postmaster@{helo_text}", helo_text, receiver,
        )
    domain = domain.lower().rstrip(".")
    out = await check_host(lookup, remote_ip, domain, f"{localpart}@{domain}", helo_text, receiver)
    comment = f"domain {domain}" + (", from ehlo because mailfrom is empty" if identity == "helo" else "")
    return Received(
        out.status, comment, remote_ip, f"{localpart}@{domain}", helo_text, receiver,
        identity=identity, mechanism=out.mechanism,
        problem=out.problem,
        domain=domain, explanation=out.explanation,
    )
