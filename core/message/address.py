"""Email addresses: header address lists (Go net/mail rules) and SMTP addresses (mox smtp).

Two grammars on purpose: header lists carry display names, groups and comments and are parsed
leniently into (name, addr-spec); SMTP addresses are validated strictly (dot-string or quoted
localpart, IDNA domain, no IP literals) because the webapi rejects anything else with
`badAddress`, and because mox re-packs parsed header addresses as `localpart@unicode-domain`.
"""

from __future__ import annotations

import encodings.idna
import functools
from dataclasses import dataclass

from core.memo import memoize_short

from .mime import decode_words, encode_word

__all__ = [
    "AddressError",
    "Address",
    "parse_address",
    "parse_domain",
    "localpart_string",
    "parse_address_list",
    "format_name_address",
]


class AddressError(ValueError):
    """An address that does not parse (webapi code badAddress)."""


# --------------------------------------------------------------------------------------------
# SMTP addresses

_ATEXT_SPECIALS = set("!#$%&'*+-/=?^_`{|}~")


def _is_atext_smtp(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in _ATEXT_SPECIALS) or ord(c) > 0x7F


@memoize_short(256)
def localpart_string(lp: str) -> str:
    """mox's Localpart.String: dot-string if possible, else a quoted-string.

    Memoized for localparts of a usual length: every address written into a
    header or a Received line goes through here, mostly the same few.
    """
    atoms = lp.split(".")
    dot = all(a != "" and all(_is_atext_smtp(c) for c in a) for a in atoms)
    if dot:
        return lp
    return '"' + lp.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _parse_localpart(s: str) -> tuple[str, str]:
    """Parse a dot-string or quoted-string localpart at the start of s; return (lp, rest)."""
    if s.startswith('"'):
        out: list[str] = []
        i = 1
        while i < len(s):
            c = s[i]
            if c == '"':
                return "".join(out), s[i + 1 :]
            if c == "\\":
                if i + 1 >= len(s) or not (0x20 <= ord(s[i + 1]) <= 0x7E):
                    raise AddressError("invalid escape in quoted localpart")
                out.append(s[i + 1])
                i += 2
                continue
            if not (ord(c) >= 0x80 or (0x20 <= ord(c) <= 0x7E and c not in '"\\')):
                raise AddressError("invalid character in quoted localpart")
            out.append(c)
            i += 1
        raise AddressError("unterminated quoted localpart")
    i = 0
    while i < len(s) and (_is_atext_smtp(s[i]) or s[i] == "."):
        i += 1
    lp = s[:i]
    if lp == "" or any(a == "" for a in lp.split(".")):
        raise AddressError("invalid localpart")
    return lp, s[i:]


def _std3_ok(label: str) -> bool:
    return all(c.isascii() and (c.isalnum() or c == "-") for c in label)


@dataclass(frozen=True)
class Domain:
    """A domain in both forms; `unicode` equals `ascii` for plain ASCII domains."""

    ascii: str
    unicode: str

    def name(self) -> str:
        return self.unicode


@functools.lru_cache(maxsize=4096)
def parse_domain(s: str) -> Domain:
    """IDNA-validate a domain (lowercased), like mox's dns.ParseDomain (no IP literals).

    Memoized (errors are not kept): a Send parses the same few domains again
    and again, and IDNA checks every label.
    """
    if s == "" or s.endswith("."):
        raise AddressError(f"invalid domain {s!r}")
    labels = s.split(".")
    a_labels = []
    u_labels = []
    for label in labels:
        if label == "":
            raise AddressError(f"invalid domain {s!r}: empty label")
        try:
            a = encodings.idna.ToASCII(label).decode("ascii").lower()
            u = encodings.idna.ToUnicode(a)
        except UnicodeError as e:
            raise AddressError(f"invalid domain {s!r}: {e}") from None
        if not _std3_ok(a) or a.startswith("-") or a.endswith("-"):
            raise AddressError(f"invalid domain {s!r}: idna: disallowed rune")
        a_labels.append(a)
        u_labels.append(u)
    return Domain(".".join(a_labels), ".".join(u_labels))


@dataclass(frozen=True)
class Address:
    """A parsed SMTP address; `localpart` is unquoted."""

    localpart: str
    domain: Domain

    def pack(self, smtputf8: bool) -> str:
        """localpart@domain with Unicode domain if smtputf8 else A-labels (mox Address.Pack)."""
        return localpart_string(self.localpart) + "@" + (self.domain.unicode if smtputf8 else self.domain.ascii)

    def __str__(self) -> str:
        return self.pack(True)


@memoize_short(320)
def parse_address(s: str) -> Address:
    """Parse `localpart@domain` strictly (mox smtp.ParseAddress); raises AddressError.

    Addresses of a usual length are memoized (errors are not kept): an
    application sends from and to the same addresses all day.
    """
    lp, rest = _parse_localpart(s)
    if not rest.startswith("@"):
        raise AddressError(f"invalid address {s!r}: missing @domain")
    return Address(lp, parse_domain(rest[1:]))


# --------------------------------------------------------------------------------------------
# Header address lists (Go net/mail AddressParser with an RFC 2047 word decoder)


def _is_atext(c: str, dot: bool) -> bool:
    if c == ".":
        return dot
    if c in '()<>[]:;@\\,"':
        return False
    return "!" <= c <= "~" or ord(c) > 0x7F


class _P:
    def __init__(self, s: str) -> None:
        self.s = s

    def empty(self) -> bool:
        return self.s == ""

    def peek(self) -> str:
        return self.s[0]

    def consume(self, c: str) -> bool:
        if self.s.startswith(c):
            self.s = self.s[1:]
            return True
        return False

    def skip_space(self) -> None:
        self.s = self.s.lstrip(" \t\r\n")

    def skip_cfws(self) -> bool:
        self.skip_space()
        while self.s.startswith("("):
            if self._comment() is None:
                return False
            self.skip_space()
        return True

    def _comment(self) -> str | None:
        depth = 0
        out = []
        i = 0
        while i < len(self.s):
            c = self.s[i]
            if c == "\\" and i + 1 < len(self.s):
                out.append(self.s[i + 1])
                i += 2
                continue
            if c == "(":
                depth += 1
                if depth > 1:
                    out.append(c)
            elif c == ")":
                depth -= 1
                if depth == 0:
                    self.s = self.s[i + 1 :]
                    return "".join(out)
                out.append(c)
            else:
                out.append(c)
            i += 1
        return None

    def atom(self, dot: bool) -> str:
        i = 0
        while i < len(self.s) and _is_atext(self.s[i], dot):
            i += 1
        if i == 0:
            raise AddressError("mail: invalid string")
        a, self.s = self.s[:i], self.s[i:]
        if dot and (a.startswith(".") or a.endswith(".") or ".." in a):
            raise AddressError("mail: invalid string")
        return a

    def quoted(self) -> str:
        out: list[str] = []
        i = 1
        while i < len(self.s):
            c = self.s[i]
            if c == '"':
                self.s = self.s[i + 1 :]
                return "".join(out)
            if c == "\\":
                if i + 1 >= len(self.s):
                    break
                out.append(self.s[i + 1])
                i += 2
                continue
            if c in "\r\n":
                raise AddressError("mail: bad character in quoted-string")
            out.append(c)
            i += 1
        raise AddressError("mail: unclosed quoted-string")

    def addr_spec(self) -> str:
        orig = self.s
        try:
            self.skip_space()
            if self.empty():
                raise AddressError("mail: no addr-spec")
            local = self.quoted() if self.peek() == '"' else self.atom(True)
            self.skip_space()
            if not self.consume("@"):
                raise AddressError("mail: missing @ in addr-spec")
            self.skip_space()
            if self.empty():
                raise AddressError("mail: no domain in addr-spec")
            if self.peek() == "[":
                end = self.s.find("]")
                if end < 0:
                    raise AddressError("mail: unclosed domain-literal")
                domain, self.s = self.s[: end + 1], self.s[end + 1 :]
            else:
                domain = self.atom(True)
            return local + "@" + domain
        except AddressError:
            self.s = orig
            raise

    def phrase(self) -> str:
        words: list[str] = []
        prev_encoded = False
        while True:
            if words and not self.skip_cfws():
                raise AddressError("mail: misformatted parenthetical comment")
            self.skip_space()
            if self.empty():
                break
            encoded = False
            try:
                if self.peek() == '"':
                    word = self.quoted()
                else:
                    word = self.atom(True)
                    if word.startswith("=?") and word.endswith("?=") and word.count("?") >= 4:
                        try:
                            dec = decode_words(word)
                        except ValueError:
                            dec = word
                        if dec != word:
                            word, encoded = dec, True
            except AddressError:
                break
            if prev_encoded and encoded:
                words[-1] += word
            else:
                words.append(word)
            prev_encoded = encoded
        if not words:
            raise AddressError("mail: missing word in phrase")
        return " ".join(words)

    def address(self, group: bool) -> list[tuple[str, str]]:
        self.skip_space()
        if self.empty():
            raise AddressError("mail: no address")
        try:
            spec = self.addr_spec()
            name = ""
            self.skip_space()
            if not self.empty() and self.peek() == "(":
                c = self._comment()
                if c is None:
                    raise AddressError("mail: misformatted parenthetical comment")
                name = c
            if self.empty() or self.s.lstrip(" \t")[:1] in (",", ";", ""):
                return [(name, spec)]
            raise AddressError("retry as name-addr")
        except AddressError:
            pass
        name = ""
        if self.peek() != "<":
            name = self.phrase()
        self.skip_space()
        if group and self.consume(":"):
            return self.group_list()
        if not self.consume("<"):
            raise AddressError("mail: no angle-addr")
        spec = self.addr_spec()
        if not self.consume(">"):
            raise AddressError("mail: unclosed angle-addr")
        return [(name, spec)]

    def group_list(self) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        if not self.skip_cfws():
            raise AddressError("mail: misformatted parenthetical comment")
        if self.consume(";"):
            self.skip_cfws()
            return out
        while True:
            if not self.skip_cfws():
                raise AddressError("mail: misformatted parenthetical comment")
            out.extend(self.address(False))
            if not self.skip_cfws():
                raise AddressError("mail: misformatted parenthetical comment")
            if self.consume(";"):
                self.skip_cfws()
                return out
            if not self.consume(","):
                raise AddressError("mail: expected comma")


def parse_address_list(value: str) -> list[tuple[str, str]]:
    """Parse a header address list into [(display name, addr-spec)] (groups flattened).

    Follows Go's mail.ParseList: any error rejects the whole list (raises AddressError).
    """
    p = _P(value)
    out: list[tuple[str, str]] = []
    while True:
        p.skip_space()
        if p.consume(","):
            continue
        if p.empty():
            break
        out.extend(p.address(True))
        if not p.skip_cfws():
            raise AddressError("mail: misformatted parenthetical comment")
        if p.empty():
            break
        if p.peek() != ",":
            raise AddressError("mail: expected comma")
        while p.consume(","):
            p.skip_space()
        if p.empty():
            break
    return out


def _quote_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_name_address(name: str, addr: str) -> str:
    """Go's mail.Address.String: `<addr>`, `"Name" <addr>` or `=?utf-8?..?= <addr>`."""
    at = addr.rfind("@")
    local, domain = (addr, "") if at < 0 else (addr[:at], addr[at + 1 :])
    quote = False
    for i, c in enumerate(local):
        if _is_atext(c, False):
            continue
        if c == "." and i > 0 and local[i - 1] != "." and i < len(local) - 1:
            continue
        quote = True
        break
    if quote:
        local = _quote_string(local)
    s = "<" + local + "@" + domain + ">"
    if name == "":
        return s
    if all((" " <= c <= "~" or c == "\t") for c in name):
        return _quote_string(name) + " " + s
    return encode_word(name) + " " + s
