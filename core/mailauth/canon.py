"""DKIM canonicalization (RFC 6376 §3.4), shared by the signer and the verifier.

One implementation for both directions: a signature we make and one we check
must hash exactly the same bytes, so ``core.dkim`` (signing) and
``core.mailauth.dkimverify`` (verifying) both use these functions.

Bodies are hashed incrementally (:class:`BodyHasher`), so a message of any
size is canonicalized from its file in chunks without holding it in memory.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

HASHES: dict[str, Callable[..., Any]] = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
#: Read size when hashing a message file.
CHUNK = 256 * 1024
#: Refuse header sections larger than this (a runaway message, not mail).
MAX_HEADER_SECTION = 16 * 1024 * 1024

_WSP_RUN = re.compile(rb"[ \t]+")
# Only runs that change: a tab, or a space followed by more whitespace.
_WSP_NOT_SINGLE = re.compile(rb"\t[ \t]*| [ \t]+")
# RFC 5322 ftext: printable US-ASCII except ":" (and never space or controls).
_FIELD_NAME = re.compile(rb"[\x21-\x39\x3b-\x7e]+")


class MalformedMessage(ValueError):
    """The header section does not parse as RFC 5322 fields."""


@dataclass
class Header:
    """One header field as it appears in the message."""

    lname: bytes  # lower-case field name
    raw: bytes  # the whole field as in the message, continuation lines and CRLF included


def parse_header_section(section: bytes) -> list[Header]:
    """Split a header section (without the empty line) into fields."""
    out: list[Header] = []
    if not section:
        return out
    lines = section.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not out:
                raise MalformedMessage("malformed message: header section starts with whitespace")
            out[-1].raw += line + b"\r\n"
            continue
        name, colon, _ = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not name:
            raise MalformedMessage("malformed message: header line without field name")
        if _FIELD_NAME.fullmatch(name) is None:
            raise MalformedMessage("malformed message: invalid header field name")
        out.append(Header(name.lower(), line + b"\r\n"))
    return out


def relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 §3.4.2 relaxed form of one field, without the trailing CRLF."""
    name, _, value = raw.partition(b":")
    if value.endswith(b"\r\n"):
        value = value[:-2]
    # Unfold, tabs to spaces, then collapse runs of spaces: each WSP run
    # becomes one SP. Plain replaces first: most fields need no regex at all.
    value = value.replace(b"\r\n", b"")
    if b"\t" in value:
        value = value.replace(b"\t", b" ")
    if b"  " in value:
        value = _WSP_RUN.sub(b" ", value)
    return name.rstrip(b" \t").lower() + b":" + value.strip(b" \t")


def canonical_header(raw: bytes, relaxed: bool) -> bytes:
    """One field as hashed: relaxed form plus CRLF, or exactly as written (simple)."""
    return relaxed_header(raw) + b"\r\n" if relaxed else raw


def _relax_lines(block: bytes) -> bytes:
    """Relaxed body rules a+b for complete lines: WSP runs -> one SP, none before CRLF.

    Collapsing first leaves at most one SP before each CRLF, so a plain
    replace removes trailing whitespace; typical text (single spaces, no
    tabs) skips the regex entirely, making relaxed nearly as cheap as simple.
    """
    if b"\t" in block or b"  " in block:
        block = _WSP_NOT_SINGLE.sub(b" ", block)
    return block.replace(b" \r\n", b"\r\n")


class BodyHasher:
    """Incremental body canonicalization + hash (RFC 6376 §3.4.3/§3.4.4).

    Input may be split anywhere; only complete lines are canonicalized, and
    trailing empty lines are held back until non-empty content follows (they
    must be dropped at the end of the body). ``limit`` is a signature's
    ``l=``: only that many canonical bytes are hashed; ``length`` counts all
    canonical bytes so a verifier can tell when ``l=`` exceeds the body.
    """

    def __init__(self, relaxed: bool, hash_name: str, limit: int | None = None) -> None:
        self.relaxed = relaxed
        self.h = HASHES[hash_name]()
        self.limit = limit
        self.length = 0
        self.carry = b""  # incomplete last line
        self.pending = 0  # held-back empty lines
        self.emitted = False

    def _feed(self, data: bytes) -> None:
        if self.limit is not None:
            room = self.limit - self.length
            if room > 0:
                self.h.update(data[:room])
        else:
            self.h.update(data)
        self.length += len(data)

    def update(self, data: bytes) -> None:
        buf = self.carry + data if self.carry else data
        end = buf.rfind(b"\r\n")
        if end < 0:
            self.carry = buf
            return
        self.carry = buf[end + 2:]
        self._lines(buf[: end + 2])

    def _lines(self, block: bytes) -> None:
        if self.relaxed:
            block = _relax_lines(block)
        end = len(block)
        n = 0
        while end >= 2 and block[end - 2:end] == b"\r\n":
            end -= 2
            n += 1
        if end == 0:
            self.pending += n
            return
        if self.pending:
            self._feed(b"\r\n" * self.pending)
        self._feed(block[:end])
        self._feed(b"\r\n")
        self.pending = n - 1
        self.emitted = True

    def digest(self) -> bytes:
        if self.carry:
            # A last line without CRLF gets one; its trailing whitespace is not
            # "at the end of a line" and stays (collapsed), as dkimpy does.
            tail, self.carry = self.carry, b""
            if self.relaxed:
                tail = _WSP_RUN.sub(b" ", tail)
            self._feed(b"\r\n" * self.pending + tail + b"\r\n")
            self.pending = 0
            self.emitted = True
        if not self.emitted and not self.relaxed:
            self._feed(b"\r\n")  # simple: an empty body is one CRLF
        return bytes(self.h.digest())


def split_message(message: bytes) -> tuple[bytes, bytes]:
    """(header section without the empty line, body); no empty line = no body."""
    if message.startswith(b"\r\n"):
        return b"", message[2:]
    i = message.find(b"\r\n\r\n")
    if i < 0:
        return message, b""
    return message[: i + 2], message[i + 4:]


def chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    """``data`` in pieces of ``size`` bytes (for feeding a :class:`BodyHasher`)."""
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i:i + size])


def read_header_section(f: BinaryIO, prefix: bytes = b"") -> tuple[bytes, bytes]:
    """Read ``prefix`` + ``f`` up to the empty line: (header section, body bytes read so far).

    The rest of the body stays in ``f`` for :func:`file_body`. Bounded by
    :data:`MAX_HEADER_SECTION`.
    """
    buf = prefix
    while True:
        if buf.startswith(b"\r\n"):
            return b"", buf[2:]
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            return buf[: i + 2], buf[i + 4:]
        if len(buf) > MAX_HEADER_SECTION:
            raise MalformedMessage("header section too large")
        more = f.read(CHUNK)
        if not more:
            return buf, b""
        buf += more


def file_body(f: BinaryIO, rest: bytes) -> Iterator[bytes]:
    """The body: what :func:`read_header_section` read past the headers, then ``f`` in chunks."""
    if rest:
        yield rest
    while chunk := f.read(CHUNK):
        yield chunk
