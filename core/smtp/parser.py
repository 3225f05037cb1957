"""SMTP command parsing (RFC 5321 and the extensions we offer) with mox's replies.

Everything here is pure: it takes a command's argument string (and the few
bits of session state that change what is valid) and returns parsed values or
raises :class:`core.smtp.reply.SMTPError` carrying the exact reply mox would
send. Keeping it free of I/O lets the property tests hammer it directly.

Also home of :class:`DataDecoder`, the incremental decoder for the DATA
stream (dot-unstuffing, end marker, bare CR/LF rules), for the same reason.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from core.address import Address, format_localpart, parse_domain
from core.gofmt import go_quote
from core.smtp.reply import Reply, SMTPError

# Mox's limits (queue.FutureReleaseIntervalMax; rcptToLimit; default max size).
FUTURE_RELEASE_MAX_SECONDS = 5184000
RCPT_MAX = 1000
DEFAULT_MAX_MESSAGE_SIZE = 104857600

ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")
_UPPER = {c: c - 32 for c in range(ord("a"), ord("z") + 1)}


def _is_surrogate(c: str) -> bool:
    return "\ud800" <= c <= "\udfff"


@dataclass(frozen=True)
class Path:
    """An SMTP path: ``localpart@domain``, ``localpart@[ip]``, or null (``<>``).

    ``localpart`` is unquoted. ``domain`` is normalised (lower-case Unicode,
    via :func:`core.address.parse_domain`); it is empty for IP literals, the
    null path, and the bare ``<postmaster>`` recipient.
    """

    localpart: str = ""
    domain: str = ""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None = None

    @property
    def is_null(self) -> bool:
        return not self.localpart and not self.domain and self.ip is None

    @property
    def domain_text(self) -> str:
        """The domain as written in an address: name or address literal."""
        if self.ip is not None:
            if self.ip.version == 6:
                return f"[IPv6:{self.ip}]"
            return f"[{self.ip}]"
        return self.domain

    def __str__(self) -> str:
        if self.is_null:
            return ""
        if not self.domain and self.ip is None:
            return format_localpart(self.localpart)
        return f"{format_localpart(self.localpart)}@{self.domain_text}"

    def to_address(self) -> Address:
        """As a :class:`core.address.Address`; ValueError for null/IP/bare paths."""
        if not self.domain:
            raise ValueError(f"path {str(self)!r} has no domain name")
        return Address(self.localpart, self.domain)


@dataclass(frozen=True)
class MailParams:
    """The MAIL FROM parameters we understand."""

    size: int | None = None
    body: str | None = None  # "7BIT" or "8BITMIME"
    smtputf8: bool = False
    requiretls: bool = False
    future_release: datetime | None = None  # UTC, from HOLDFOR/HOLDUNTIL
    future_release_request: str = ""  # "for;<n>" or "until;<as given>"


def syntax_error(msg: str, remaining: str = "") -> SMTPError:
    return SMTPError(Reply(501, "5.5.2", f"{msg} (remaining: {go_quote(remaining)})"))


class Parser:
    """Cursor over one command's argument string (mox's parser semantics).

    ``upper`` has only ASCII a-z upper-cased so that offsets stay aligned with
    the original (str.upper would turn "ß" into "SS").
    """

    def __init__(self, s: str, smtputf8: bool = False, strict_end: bool = False) -> None:
        self.orig = s
        self.upper = s.translate(_UPPER)
        self.o = 0
        self.smtputf8 = smtputf8
        self.strict_end = strict_end
        self.utf8_localpart_code = 0

    # -- primitives -----------------------------------------------------

    def error(self, msg: str) -> SMTPError:
        return syntax_error(msg, self.orig[self.o :])

    def empty(self) -> bool:
        return self.o >= len(self.orig)

    def xempty(self) -> None:
        if not self.empty():
            raise self.error("expected end of line")

    def xend(self) -> None:
        """End of command: strict for submission, trailing blanks allowed otherwise."""
        if self.strict_end:
            self.xempty()
        rem = self.remainder()
        if any(c not in " \t" for c in rem):
            raise syntax_error(f"trailing data, not white space: {go_quote(rem)}", "")

    def has_prefix(self, s: str) -> bool:
        return self.upper.startswith(s, self.o)

    def take(self, s: str) -> bool:
        if self.has_prefix(s):
            self.o += len(s)
            return True
        return False

    def xtake(self, s: str) -> None:
        if not self.take(s):
            raise self.error(f"expected {go_quote(s)}")

    def space(self) -> bool:
        return self.take(" ")

    def xspace(self) -> None:
        self.xtake(" ")

    def remainder(self) -> str:
        r = self.orig[self.o :]
        self.o = len(self.orig)
        return r

    def peek(self) -> str:
        return self.upper[self.o] if self.o < len(self.upper) else ""

    def _takefn1(self, what: str, fn: Callable[[str, int], bool], case: bool = False) -> str:
        if self.empty():
            raise self.error(f"need at least one char for {what}")
        src = self.orig if case else self.upper
        i = 0
        while self.o + i < len(src) and fn(src[self.o + i], i):
            i += 1
        if i == 0:
            raise self.error(f"expected at least one char for {what}")
        r = self.orig[self.o : self.o + i]
        self.o += i
        return r

    def _utf8_ok(self, c: str) -> bool:
        return ord(c) > 0x7F and self.smtputf8 and not _is_surrogate(c) and c.isprintable()

    # -- grammar --------------------------------------------------------

    def xsubdomain(self) -> str:
        return self._takefn1(
            "subdomain",
            lambda c, i: (
                "0" <= c <= "9" or "A" <= c <= "Z" or (i > 0 and c == "-") or self._utf8_ok(c)
            ),
        )

    def xdomain(self) -> str:
        start = self.o
        s = self.xsubdomain()
        while self.take("."):
            s += "." + self.xsubdomain()
        if len(s.encode("utf-8")) > 255:
            raise self.error("domain longer than 255 octets")
        try:
            return parse_domain(s)
        except ValueError as e:
            self.o = start
            raise self.error(f"parsing domain name {go_quote(s)}: {e}") from None

    def xldhstr(self) -> str:
        return self._takefn1(
            "ldh-str", lambda c, i: "A" <= c <= "Z" or "0" <= c <= "9" or (i == 0 and c == "-")
        )

    def xipdomain(self) -> tuple[str, ipaddress.IPv4Address | ipaddress.IPv6Address | None]:
        """Address literal or domain; returns (domain, ip) with one of them set."""
        if self.take("["):
            c = self.peek()
            ipv6 = False
            if not ("0" <= c <= "9"):
                tag = self.xldhstr()
                self.xtake(":")
                if tag.upper() != "IPV6":
                    raise self.error(f"unrecognized address literal {go_quote(tag)}")
                ipv6 = True
            lit = self._takefn1("address literal", lambda c, i: c != "]")
            self.xtake("]")
            if "%" in lit:
                raise self.error(f"invalid ip in address: {go_quote(lit)}")
            try:
                ip = ipaddress.ip_address(lit)
            except ValueError:
                raise self.error(f"invalid ip in address: {go_quote(lit)}") from None
            if ipv6 and ip.version != 6:
                raise self.error("ip is not ipv6")
            if not ipv6 and ip.version != 4:
                raise self.error("ip is not ipv4")
            return "", ip
        return self.xdomain(), None

    def _utf8_localpart_error(self) -> SMTPError:
        code = self.utf8_localpart_code or 550
        return SMTPError(Reply(code, "5.6.7", "non-ascii address not permitted without smtputf8"))

    def xatom(self, is_localpart: bool) -> str:
        def ok(c: str, i: int) -> bool:
            if c in ATEXT_SPECIALS or "0" <= c <= "9" or "A" <= c <= "Z":
                return True
            if ord(c) > 0x7F:
                if is_localpart and not self.smtputf8:
                    raise self._utf8_localpart_error()
                return self._utf8_ok(c)
            return False

        return self._takefn1("atom", ok)

    def xchar(self) -> str:
        if self.empty():
            raise self.error("need another character")
        c = self.orig[self.o]
        self.o += 1
        return c

    def xquoted_string(self, is_localpart: bool) -> str:
        self.xtake('"')
        out: list[str] = []
        esc = False
        while True:
            c = self.xchar()
            if esc:
                if " " <= c < "\x7f":
                    out.append(c)
                    esc = False
                    continue
                raise self.error(f"invalid localpart, bad escaped char {go_quote(c)}")
            if c == "\\":
                esc = True
                continue
            if c == '"':
                return "".join(out)
            if is_localpart and ord(c) > 0x7F and not self.smtputf8:
                raise self._utf8_localpart_error()
            if (" " <= c < "\x7f") or self._utf8_ok(c):
                out.append(c)
                continue
            raise self.error(f"invalid localpart, invalid character {go_quote(c)}")

    def xlocalpart(self) -> str:
        if self.has_prefix('"'):
            s = self.xquoted_string(True)
        else:
            s = self.xatom(True)
            while self.take("."):
                s += "." + self.xatom(True)
        if len(s.encode("utf-8")) > 128:
            raise self.error("localpart longer than 64 octets")
        return s

    def xmailbox(self) -> Path:
        lp = self.xlocalpart()
        self.xtake("@")
        domain, ip = self.xipdomain()
        return Path(lp, domain, ip)

    def xbare_path(self) -> Path:
        # Source routes are parsed and ignored. RFC 5321 section 4.1.2.
        if self.take("@"):
            self.xdomain()
            while self.take(","):
                self.xtake("@")
                self.xdomain()
            self.xtake(":")
        return self.xmailbox()

    def xraw_reverse_path(self) -> str:
        """Text between <>; parsed later, once SMTPUTF8 is known from the params."""
        self.xtake("<")
        start = self.o
        end = self.orig.find(">", start)
        if end < 0:
            self.o = len(self.orig)
            raise self.error('expected ">"')
        self.o = end + 1
        return self.orig[start:end]

    def xforward_path(self) -> Path:
        self.utf8_localpart_code = 553
        try:
            start = self.o
            self.xtake("<")
            p = self.xbare_path()
            self.xtake(">")
            if self.o - start > 256:
                raise self.error("path longer than 256 octets")
            return p
        finally:
            self.utf8_localpart_code = 0

    def xparam_keyword(self) -> str:
        return self._takefn1(
            "parameter keyword",
            lambda c, i: "0" <= c <= "9" or "A" <= c <= "Z" or (i > 0 and c == "-"),
        )

    def xparam_value(self) -> str:
        return self._takefn1(
            "parameter value",
            lambda c, i: (" " < c < "\x7f" and c != "=") or self._utf8_ok(c),
        )

    def xnumber(self, max_digits: int) -> int:
        s = self._takefn1("number", lambda c, i: "0" <= c <= "9" and i < max_digits)
        return int(s)

    def xstring(self) -> str:
        if self.peek() == '"':
            return self.xquoted_string(False)
        return self.xatom(False)

    def xsasl_mech(self) -> str:
        return self._takefn1(
            "sasl-mech",
            lambda c, i: i < 20 and ("A" <= c <= "Z" or "0" <= c <= "9" or c in "-_"),
        )

    def xtext(self) -> str:
        out: list[str] = []
        while not self.empty():
            c = self.orig[self.o]
            if "\x21" <= c < "\x7f" and c not in "+= ":
                out.append(c)
                self.o += 1
                continue
            if c != "+":
                break
            hx = self.orig[self.o + 1 : self.o + 3]
            if len(hx) != 2 or any(h not in "0123456789ABCDEF" for h in hx):
                raise self.error(f"parsing xtext: invalid hexadecimal {go_quote(hx)}")
            out.append(chr(int(hx, 16)))
            self.o += 3
        return "".join(out)

    def xdatetime_utc(self) -> tuple[datetime, str]:
        m = _DATETIME_RE.match(self.orig, self.o)
        if not m:
            raise self.error("expected rfc 3339 date-time in utc")
        s = m.group(0)
        self.o = m.end()
        year, month, day, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
        frac = m.group(7) or ""
        try:
            t = datetime(year, month, day, hh, mm, min(ss, 59), tzinfo=UTC)
        except ValueError:
            raise self.error(f"invalid date-time {go_quote(s)}") from None
        if frac:
            t += timedelta(microseconds=int((frac[1:] + "000000")[:6]))
        return t, s


_DATETIME_RE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?(?:[Zz]|[+-]00:00)"
)


# -- commands -----------------------------------------------------------------


def split_command(line: str) -> tuple[str, str]:
    """``"MAIL FROM:<a@b>"`` -> ``("mail", " FROM:<a@b>")`` (args keep their leading space)."""
    verb, sep, rest = line.partition(" ")
    return verb.lower(), (" " + rest) if sep else ""


def parse_hello(args: str, ehlo: bool, *, strict_end: bool) -> str:
    """EHLO/HELO argument as the client's claimed name (``[ip]`` for literals)."""
    p = Parser(args, smtputf8=True, strict_end=strict_end)
    p.xspace()
    if ehlo:
        domain, ip = p.xipdomain()
        if ip is not None and p.space():
            p.remainder()
        name = Path("", domain, ip).domain_text
    else:
        name = p.xdomain()
    p.xend()
    return name


@dataclass(frozen=True)
class MailContext:
    """Session state that decides what MAIL FROM may carry."""

    submission: bool
    tls: bool
    requiretls_enabled: bool
    max_message_size: int
    pedantic: bool = False


def parse_mail(args: str, ctx: MailContext, now: datetime | None = None) -> tuple[Path, MailParams]:
    """Parse ``MAIL`` arguments (``" FROM:<path> params"``) with mox's checks and replies."""
    now = now or datetime.now(UTC)
    p = Parser(args, smtputf8=False, strict_end=ctx.submission)
    p.xtake(" FROM:")
    if not ctx.pedantic:
        p.space()  # Outlook sends "MAIL FROM: <addr>".
    raw = p.xraw_reverse_path()
    seen: set[str] = set()
    size: int | None = None
    body: str | None = None
    smtputf8 = requiretls = False
    future: datetime | None = None
    future_req = ""
    while p.space():
        key = p.xparam_keyword()
        k = key.upper()
        if k in seen:
            raise SMTPError(Reply(501, "5.5.4", f"duplicate param {go_quote(key)}"))
        seen.add(k)
        if k == "SIZE":
            p.xtake("=")
            size = p.xnumber(20)
            if size > ctx.max_message_size:
                ecode = "5.2.3" if size < DEFAULT_MAX_MESSAGE_SIZE else "5.3.4"
                raise SMTPError(Reply(552, ecode, "message too large"))
        elif k == "BODY":
            p.xtake("=")
            v = p.xparam_value().upper()
            if v not in ("7BIT", "8BITMIME"):
                raise SMTPError(Reply(555, "5.5.4", f"unrecognized parameter {go_quote(key)}"))
            body = v
        elif k == "AUTH":
            # RFC 4954 AUTH=<mailbox>: parsed and ignored, we check the sender ourselves.
            p.xtake("=")
            if not p.take("<>"):
                p.xtext()
        elif k == "SMTPUTF8":
            smtputf8 = True
        elif k == "REQUIRETLS":
            if not ctx.tls:
                raise SMTPError(
                    Reply(530, "5.7.10", "requiretls only allowed on tls-encrypted connections")
                )
            if not ctx.requiretls_enabled:
                raise SMTPError(Reply(555, "5.3.3", "REQUIRETLS not allowed for this connection"))
            requiretls = True
        elif k in ("HOLDFOR", "HOLDUNTIL"):
            if not ctx.submission:
                raise SMTPError(Reply(555, "5.3.3", f"unrecognized parameter {go_quote(key)}"))
            if (k == "HOLDFOR" and "HOLDUNTIL" in seen) or (k == "HOLDUNTIL" and "HOLDFOR" in seen):
                raise SMTPError(Reply(501, "5.5.4", "cannot use both HOLDUNTIL and HOLFOR"))
            p.xtake("=")
            if k == "HOLDFOR":
                n = p.xnumber(9)
                if n > FUTURE_RELEASE_MAX_SECONDS:
                    raise SMTPError(
                        Reply(554, "5.5.4", "future release interval too far in the future")
                    )
                future = now + timedelta(seconds=n)
                future_req = f"for;{n}"
            else:
                t, s = p.xdatetime_utc()
                ival = (t - now).total_seconds()
                if ival <= 0:
                    raise SMTPError(
                        Reply(554, "5.5.4", "requested future release time is in the past")
                    )
                if ival > FUTURE_RELEASE_MAX_SECONDS:
                    raise SMTPError(
                        Reply(
                            554, "5.5.4", "requested future release time is too far in the future"
                        )
                    )
                future = t
                future_req = "until;" + s
        else:
            raise SMTPError(Reply(555, "5.3.3", f"unrecognized parameter {go_quote(key)}"))

    # Only now do we know whether UTF-8 is allowed in the address.
    path = Path()
    if raw:
        pp = Parser(raw, smtputf8=smtputf8)
        pp.utf8_localpart_code = 550
        path = pp.xbare_path()
        pp.xempty()
    p.xend()
    return path, MailParams(size, body, smtputf8, requiretls, future, future_req)


def parse_rcpt(args: str, *, smtputf8: bool, submission: bool, pedantic: bool = False) -> Path:
    """Parse ``RCPT`` arguments; any parameter is refused (we offer none)."""
    p = Parser(args, smtputf8=smtputf8, strict_end=submission)
    p.xtake(" TO:")
    if not pedantic:
        p.space()
    if p.take("<POSTMASTER>"):
        path = Path("postmaster", "")
    else:
        path = p.xforward_path()
    while p.space():
        key = p.xparam_keyword()
        raise SMTPError(Reply(555, "5.3.3", f"unrecognized parameter {go_quote(key)}"))
    p.xend()
    return path


def parse_vrfy(args: str, *, strict_end: bool) -> str:
    """VRFY/EXPN argument (string, optional SMTPUTF8)."""
    p = Parser(args, smtputf8=True, strict_end=strict_end)
    p.xspace()
    s = p.xstring()
    if p.space():
        p.xtake("SMTPUTF8")
    p.xend()
    return s


def parse_noop(args: str, *, strict_end: bool) -> None:
    p = Parser(args, smtputf8=True, strict_end=strict_end)
    if p.space():
        p.xstring()
    p.xend()


def parse_no_args(args: str, *, strict_end: bool) -> None:
    Parser(args, strict_end=strict_end).xend()


def parse_auth(args: str) -> tuple[str, str | None]:
    """``AUTH <mech> [initial-response]`` -> (MECH upper-cased, response text or None)."""
    p = Parser(args)
    p.xspace()
    mech = p._takefn1(
        "sasl-mech",
        lambda c, i: i < 20 and ("A" <= c <= "Z" or "0" <= c <= "9" or c in "-_"),
    )
    if p.empty():
        return mech.upper(), None
    p.xspace()
    while p.space():  # Windows Mail sends two spaces.
        pass
    resp = p.remainder()
    if resp == "":
        raise SMTPError(Reply(501, "5.5.2", "missing initial auth base64 parameter after space"))
    return mech.upper(), resp


def decode_sasl_base64(s: str) -> bytes:
    """Decode an AUTH response; ``=`` is the empty initial response (RFC 4954)."""
    if s == "=":
        return b""
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as e:
        raise SMTPError(Reply(501, "5.5.2", f"invalid base64: {e}")) from None


# -- DATA ------------------------------------------------------------------------


class DataDecoder:
    """Incremental decoder for the DATA stream.

    Mox's rules (its smtp.DataReader plus message.Writer): the message ends
    only at CRLF "." CRLF; a leading dot is removed from lines after CRLF;
    a bare CR anywhere, and a dot line next to a bare LF ("\\n.\\n",
    "x\\n.\\r\\n") mark the message bad (SMTP smuggling) but reading continues
    to the real end marker so the protocol stays in sync; other bare LFs are
    accepted and written as CRLF.

    ``feed`` returns the decoded bytes and how many input bytes it used (the
    rest, after the end marker, are the client's next commands). ``size``
    counts decoded bytes before LF->CRLF conversion, which is what the
    message size limit applies to.
    """

    PARTIAL_MAX = 64 * 1024

    def __init__(self) -> None:
        self._pending = b""
        self._after_crlf = True  # Previous data ended with CRLF (or start).
        self._after_bare_lf = False
        self._after_any_lf = True
        self.done = False
        self.bad_crlf = False
        self.has_8bit = False
        self.has_nul = False  # A NUL byte anywhere (refused in pedantic mode).
        self.have_body = False  # Header/body separating empty line seen.
        self.size = 0

    def feed(self, data: bytes) -> tuple[bytes, int]:
        if self.done:
            return b"", 0
        pend = self._pending
        buf = pend + data if pend else bytes(data)
        out: list[bytes] = []
        pos = 0
        last_nl = buf.rfind(b"\n")
        if last_nl >= 0:
            block = buf[: last_nl + 1]
            if self._fast_ok(block):
                self._emit(out, block, block)
                if not self.have_body and (block.startswith(b"\r\n") or b"\r\n\r\n" in block):
                    self.have_body = True
                pos = last_nl + 1
            else:
                while pos <= last_nl:
                    nl = buf.index(b"\n", pos)
                    line = buf[pos : nl + 1]
                    pos = nl + 1
                    if self._line(out, line):
                        self.done = True
                        self._pending = b""
                        return b"".join(out), pos - len(pend)
        rest = buf[pos:]
        if len(rest) > self.PARTIAL_MAX:
            cut = len(rest) - 1 if rest.endswith(b"\r") else len(rest)
            self._partial(out, rest[:cut])
            rest = rest[cut:]
        self._pending = rest
        return b"".join(out), len(data)

    def _fast_ok(self, block: bytes) -> bool:
        if not self._after_crlf or block.startswith(b".") or b"\n." in block:
            return False
        nlf = block.count(b"\n")
        return block.count(b"\r\n") == nlf and block.count(b"\r") == nlf

    def _emit(self, out: list[bytes], raw: bytes, decoded: bytes) -> None:
        self.size += len(raw)
        if not self.has_8bit and not decoded.isascii():
            self.has_8bit = True
        if not self.has_nul and b"\0" in decoded:
            self.has_nul = True
        out.append(decoded)

    def _line(self, out: list[bytes], line: bytes) -> bool:
        crlf = line.endswith(b"\r\n")
        if self._after_crlf:
            if line == b".\r\n":
                return True
            if line.startswith(b"."):
                if line.startswith(b".\n"):
                    self.bad_crlf = True
                line = line[1:]
        elif self._after_bare_lf and (line.startswith(b".\n") or line.startswith(b".\r\n")):
            self.bad_crlf = True
        body = line[:-2] if crlf else line[:-1]
        if b"\r" in body:
            self.bad_crlf = True
        if not body and self._after_any_lf:
            self.have_body = True
        self._emit(out, line, line if crlf else body + b"\r\n")
        self._after_crlf = crlf
        self._after_bare_lf = not crlf
        self._after_any_lf = True
        return False

    def _partial(self, out: list[bytes], chunk: bytes) -> None:
        if not chunk:
            return
        if self._after_crlf and chunk.startswith(b"."):
            chunk = chunk[1:]
        if b"\r" in chunk:
            self.bad_crlf = True
        self._emit(out, chunk, chunk)
        self._after_crlf = self._after_bare_lf = self._after_any_lf = False
