"""Email addresses: parsing, IDNA-normalised domains, canonical string form.

Config lookups, SMTP and the webapi must agree on when two addresses are the
same: domains compare in lower-case Unicode form (``xn--`` labels decoded),
localparts are kept exactly as given (case and Unicode preserved) because
whether case matters is a per-domain setting applied by the config lookup.
Quoted localparts (``"a b"@example.com``) are unquoted on parsing and quoted
again by :meth:`Address.__str__` when needed.
"""

from __future__ import annotations

import encodings.idna
import functools
from dataclasses import dataclass

from core.memo import memoize_short

# RFC 5322 atext, plus any non-ASCII character (RFC 6531, SMTPUTF8).
_ATEXT_SPECIALS = frozenset("!#$%&'*+-/=?^_`{|}~")


def _is_atext(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in _ATEXT_SPECIALS) or not c.isascii() and c.isprintable()


def is_dot_atom(localpart: str) -> bool:
    """Whether ``localpart`` can be written without quotes."""
    if not localpart:
        return False
    parts = localpart.split(".")
    return all(p and all(_is_atext(c) for c in p) for p in parts)


#: Longer inputs are parsed every time (see :mod:`core.memo`).
_CACHED_ADDRESS_MAX = 320


@memoize_short(_CACHED_ADDRESS_MAX)
def format_localpart(localpart: str) -> str:
    """Localpart as written in an address: as-is if a dot-atom, else quoted.

    Memoized for localparts of a usual length (``str(address)`` runs often).
    """
    if is_dot_atom(localpart):
        return localpart
    escaped = localpart.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def _label_to_unicode(label: str) -> str:
    if label.lower().startswith("xn--"):
        try:
            uni = encodings.idna.ToUnicode(label.lower())
        except UnicodeError as e:
            raise ValueError(f"invalid IDNA label {label!r}: {e}") from e
        if encodings.idna.ToASCII(uni).decode("ascii") != label.lower():
            raise ValueError(f"invalid IDNA label {label!r}: does not round-trip")
        return uni
    if label.isascii():
        return label.lower()
    try:
        ascii_label = encodings.idna.ToASCII(label)
        return encodings.idna.ToUnicode(ascii_label)
    except UnicodeError as e:
        raise ValueError(f"invalid internationalized label {label!r}: {e}") from e


@functools.lru_cache(maxsize=4096)
def parse_domain(s: str) -> str:
    """Normalise a domain name to lower-case Unicode, validating its labels.

    Raises ValueError for empty names, empty labels, over-long labels and
    characters not allowed in host names. Memoized (errors are not kept):
    every submission and config lookup parses the same few domains again.
    """
    if not s:
        raise ValueError("empty domain")
    if s.startswith("[") and s.endswith("]"):
        raise ValueError(f"address literal {s!r} not supported as domain")
    name = s[:-1] if s.endswith(".") else s
    labels = name.split(".")
    out = []
    total = 0
    for label in labels:
        if not label:
            raise ValueError(f"empty label in domain {s!r}")
        uni = _label_to_unicode(label)
        ascii_label = encodings.idna.ToASCII(uni).decode("ascii") if not uni.isascii() else uni
        if len(ascii_label) > 63:
            raise ValueError(f"label too long in domain {s!r}")
        if ascii_label.startswith("-") or ascii_label.endswith("-"):
            raise ValueError(f"label starts or ends with hyphen in domain {s!r}")
        if not all(c.isalnum() or c in "-_" for c in ascii_label) or not ascii_label.isascii():
            raise ValueError(f"invalid character in domain {s!r}")
        total += len(ascii_label) + 1
        out.append(uni)
    if total - 1 > 253:
        raise ValueError(f"domain {s!r} too long")
    return ".".join(out)


@functools.lru_cache(maxsize=4096)
def domain_to_ascii(domain: str) -> str:
    """IDNA (``xn--``) form of a normalised domain, for DNS and SMTP without SMTPUTF8.

    Memoized: the same domains recur message after message (errors are not kept).
    """
    return ".".join(
        label if label.isascii() else encodings.idna.ToASCII(label).decode("ascii")
        for label in parse_domain(domain).split(".")
    )


@dataclass(frozen=True)
class Address:
    """A parsed address; ``domain`` is normalised, ``localpart`` is unquoted."""

    localpart: str
    domain: str

    def __str__(self) -> str:
        return f"{format_localpart(self.localpart)}@{self.domain}"

    @property
    def domain_ascii(self) -> str:
        return domain_to_ascii(self.domain)

    def ascii(self) -> str:
        """Address with the domain in IDNA form (localpart unchanged)."""
        return f"{format_localpart(self.localpart)}@{self.domain_ascii}"


def _parse_quoted(s: str) -> tuple[str, str]:
    """Parse a quoted-string at the start of ``s``; returns (value, rest)."""
    out = []
    i = 1
    while i < len(s):
        c = s[i]
        if c == "\\":
            if i + 1 >= len(s):
                break
            out.append(s[i + 1])
            i += 2
            continue
        if c == '"':
            return "".join(out), s[i + 1 :]
        if c in "\r\n":
            raise ValueError("line break in quoted localpart")
        out.append(c)
        i += 1
    raise ValueError("unterminated quoted localpart")


def parse_localpart(s: str) -> str:
    """Parse a (possibly quoted) localpart and return its unquoted value."""
    if s.startswith('"'):
        value, rest = _parse_quoted(s)
        if rest:
            raise ValueError(f"unexpected text after quoted localpart: {rest!r}")
        return value
    if not s:
        raise ValueError("empty localpart")
    for c in s:
        if c != "." and not _is_atext(c):
            raise ValueError(f"invalid character {c!r} in localpart")
    return s


@memoize_short(_CACHED_ADDRESS_MAX)
def parse_address(s: str) -> Address:
    """Parse ``localpart@domain``; raises ValueError with a clear message.

    Addresses of a usual length are memoized (errors are not kept): logins,
    senders and recipients recur request after request.
    """
    if not isinstance(s, str) or not s:
        raise ValueError("empty address")
    if s.startswith('"'):
        localpart, rest = _parse_quoted(s)
        if not rest.startswith("@"):
            raise ValueError(f"invalid address {s!r}: expected @ after quoted localpart")
        domain = rest[1:]
    else:
        raw_lp, at, domain = s.rpartition("@")
        if not at:
            raise ValueError(f"invalid address {s!r}: missing @")
        try:
            localpart = parse_localpart(raw_lp)
        except ValueError as e:
            raise ValueError(f"invalid address {s!r}: {e}") from e
    if not localpart and not s.startswith('"'):
        raise ValueError(f"invalid address {s!r}: empty localpart")
    try:
        dom = parse_domain(domain)
    except ValueError as e:
        raise ValueError(f"invalid address {s!r}: {e}") from e
    return Address(localpart, dom)
