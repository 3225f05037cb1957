"""DKIM signing (RFC 6376, Ed25519 per RFC 8463) for outgoing mail, the way mox signs.

Why here and not a library: the design keeps the dependency list short
(``cryptography`` does the key work; dkimpy is only used by tests to verify),
and mox's exact choices matter to receivers and to tests that compare with
mox: which headers are signed and "sealed" (listed once more than present so
nobody can add another instance later), ``i=`` with the localpart, ``t=``/``x=``,
``c=`` omitted for simple/simple, and the header folded at 78 columns with the
base64 ``b=`` value wrapped anywhere.

Two layers:

* :func:`sign` / :func:`sign_file` are pure: bytes (or a prefix plus a file)
  in, ``DKIM-Signature: ...\\r\\n`` header lines out, one per selector in the
  order given. The body is hashed in chunks, so a 100 MB message is never held
  in memory by the file variant.
* :func:`sign_for_domain` is what SMTP submission and the webapi call: it
  looks up the From domain's ``DKIM.Sign`` selectors, loads (and caches) the
  keys, signs off the trio thread when the work is not trivially small, and
  returns ``b""`` for an unsigned domain. Failures are logged and give ``b""``
  (SMTP: "the message is sent unsigned"), or raise :class:`DKIMError` with
  ``strict=True`` (webapi: a ``server`` error).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import trio
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from core.address import domain_to_ascii, format_localpart, parse_address
from core.config.sconf import duration_ns, parse_duration
from core.config.validate import canonical_localpart
from core.localserve_init import load_pem_private_key_with_note

log = logging.getLogger("moxtrio.dkim")

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

#: Header fields signed when a selector lists none (spec 07 §3.1, mox's default).
DEFAULT_HEADERS: tuple[str, ...] = (
    "From", "To", "Cc", "Bcc", "Reply-To", "References", "In-Reply-To", "Subject", "Date",
    "Message-Id", "Content-Type",
)
#: mox folds DKIM-Signature (and Received) headers at this line length.
MAX_LINE = 78
#: Messages up to this size (and with cached keys) are signed on the trio
#: thread: the thread hop costs more than the work (see tests/dkim timings).
INLINE_MAX_BYTES = 64 * 1024
#: Read size when hashing a message file.
CHUNK = 256 * 1024
#: Refuse header sections larger than this (a runaway message, not mail).
MAX_HEADER_SECTION = 16 * 1024 * 1024

_HASHES: dict[str, Callable[..., Any]] = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}
_CRYPTO_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {
    "sha256": hashes.SHA256, "sha1": hashes.SHA1,
}
_WSP_RUN = re.compile(rb"[ \t]+")
# Only runs that change: a tab, or a space followed by more whitespace.
_WSP_NOT_SINGLE = re.compile(rb"\t[ \t]*| [ \t]+")
_FOLD = re.compile(rb"\r\n")


class DKIMError(Exception):
    """Signing is impossible: malformed message, bad key, unknown selector or hash."""


@dataclass(frozen=True)
class SelectorConfig:
    """One signing selector, resolved: key loaded, defaults applied.

    ``selector`` is the selector name (Unicode or ASCII; written as ASCII).
    Defaults are mox's dkim.Selector zero values except the header list;
    config-derived selectors come from :func:`selectors_from_config`, which
    copies the configured canonicalization literally (unset = simple, as mox).
    """

    selector: str
    key: PrivateKey
    hash: str = "sha256"
    header_relaxed: bool = True
    body_relaxed: bool = True
    headers: tuple[str, ...] = DEFAULT_HEADERS
    seal_headers: bool = True
    expiration_seconds: int = 0

    @property
    def algorithm(self) -> str:
        kind = "ed25519" if isinstance(self.key, ed25519.Ed25519PrivateKey) else "rsa"
        return f"{kind}-{self.hash}"

    @property
    def canonicalization(self) -> str:
        return ("relaxed" if self.header_relaxed else "simple") + "/" + (
            "relaxed" if self.body_relaxed else "simple"
        )


# -- canonicalization ---------------------------------------------------------------


@dataclass
class _Header:
    lname: bytes  # lower-case field name
    raw: bytes  # the whole field as in the message, continuation lines and CRLF included


def _parse_header_section(section: bytes) -> list[_Header]:
    """Split a header section (without the empty line) into fields."""
    out: list[_Header] = []
    if not section:
        return out
    lines = section.split(b"\r\n")
    if lines and lines[-1] == b"":
        lines.pop()
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not out:
                raise DKIMError("malformed message: header section starts with whitespace")
            out[-1].raw += line + b"\r\n"
            continue
        name, colon, _ = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not name:
            raise DKIMError("malformed message: header line without field name")
        if any(c <= 0x20 or c >= 0x7F for c in name):
            raise DKIMError("malformed message: invalid header field name")
        out.append(_Header(name.lower(), line + b"\r\n"))
    return out


def _relaxed_header(raw: bytes) -> bytes:
    """RFC 6376 §3.4.2 relaxed form of one field, without the trailing CRLF."""
    name, _, value = raw.partition(b":")
    if value.endswith(b"\r\n"):
        value = value[:-2]
    value = _WSP_RUN.sub(b" ", _FOLD.sub(b"", value)).strip(b" \t")
    return name.rstrip(b" \t").lower() + b":" + value


def _relax_lines(block: bytes) -> bytes:
    """Relaxed body rules a+b for complete lines: WSP runs -> one SP, none before CRLF.

    Collapsing first leaves at most one SP before each CRLF, so a plain
    replace removes trailing whitespace; typical text (single spaces, no
    tabs) skips the regex entirely, making relaxed nearly as cheap as simple.
    """
    if b"\t" in block or b"  " in block:
        block = _WSP_NOT_SINGLE.sub(b" ", block)
    return block.replace(b" \r\n", b"\r\n")


class _BodyHasher:
    """Incremental body canonicalization + hash (RFC 6376 §3.4.3/§3.4.4).

    Input may be split anywhere; only complete lines are canonicalized, and
    trailing empty lines are held back until non-empty content follows (they
    must be dropped at the end of the body).
    """

    def __init__(self, relaxed: bool, hash_name: str) -> None:
        self.relaxed = relaxed
        self.h = _HASHES[hash_name]()
        self.carry = b""  # incomplete last line
        self.pending = 0  # held-back empty lines
        self.emitted = False

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
            self.h.update(b"\r\n" * self.pending)
        self.h.update(block[:end])
        self.h.update(b"\r\n")
        self.pending = n - 1
        self.emitted = True

    def digest(self) -> bytes:
        if self.carry:
            # A last line without CRLF gets one; its trailing whitespace is not
            # "at the end of a line" and stays (collapsed), as dkimpy does.
            tail, self.carry = self.carry, b""
            if self.relaxed:
                tail = _WSP_RUN.sub(b" ", tail)
            self.h.update(b"\r\n" * self.pending + tail + b"\r\n")
            self.pending = 0
            self.emitted = True
        if not self.emitted and not self.relaxed:
            self.h.update(b"\r\n")  # simple: an empty body is one CRLF
        return bytes(self.h.digest())


# -- header writing -------------------------------------------------------------------


class _HeaderWriter:
    """mox's folding: whole tokens move to a new ``\\r\\n\\t`` line past 78 columns."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.line_len = 0
        self.nonfirst = False

    def add(self, sep: str, text: str) -> None:
        if self.nonfirst and self.line_len > 1 and self.line_len + len(sep) + len(text) > MAX_LINE:
            self.parts.append("\r\n\t")
            self.line_len = 1
        elif self.nonfirst and sep:
            self.parts.append(sep)
            self.line_len += len(sep)
        self.parts.append(text)
        self.line_len += len(text)
        self.nonfirst = True

    def add_wrap(self, text: str) -> None:
        """Add ``text`` breaking it anywhere (base64)."""
        while text:
            room = max(MAX_LINE - self.line_len, 1)
            piece, text = text[:room], text[room:]
            self.parts.append(piece)
            self.line_len += len(piece)
            if text:
                self.parts.append("\r\n\t")
                self.line_len = 1

    def value(self) -> str:
        return "".join(self.parts) + "\r\n"


def _identity(localpart: str | None, domain_ascii: str) -> str | None:
    if localpart is None:
        return None
    lp = format_localpart(localpart)
    if any(c in lp for c in "; \t\r\n") or not lp.isprintable():
        # Would break the tag list; the RFC lets i= omit the localpart.
        lp = ""
    return f"{lp}@{domain_ascii}"


def _signature_header(
    sel: SelectorConfig, domain_ascii: str, identity: str | None, signed: list[str],
    t: int, body_hash: bytes, signature: bytes,
) -> str:
    w = _HeaderWriter()
    w.add("", "DKIM-Signature: v=1;")
    w.add(" ", f"d={domain_ascii};")
    w.add(" ", f"s={domain_to_ascii(sel.selector)};")
    if identity is not None:
        w.add(" ", f"i={identity};")
    w.add(" ", f"a={sel.algorithm};")
    if sel.canonicalization != "simple/simple":
        w.add(" ", f"c={sel.canonicalization};")
    w.add(" ", f"t={t};")
    if sel.expiration_seconds > 0:
        w.add(" ", f"x={t + sel.expiration_seconds};")
    for i, name in enumerate(signed):
        text = ("h=" if i == 0 else "") + name + (";" if i == len(signed) - 1 else ":")
        w.add(" " if i == 0 else "", text)
    w.add(" ", f"bh={base64.b64encode(body_hash).decode()};")
    w.add(" ", "b=")
    if signature:
        w.add_wrap(base64.b64encode(signature).decode())
    return w.value()


# -- signing ------------------------------------------------------------------------------


def _signed_header_names(sel: SelectorConfig, headers: list[_Header]) -> list[str]:
    names = list(sel.headers)
    if sel.seal_headers:
        counts: dict[bytes, int] = {}
        for h in headers:
            counts[h.lname] = counts.get(h.lname, 0) + 1
        for name in sel.headers:
            names.extend([name] * counts.get(name.lower().encode("ascii", "replace"), 0))
    return names


def _header_data(sel: SelectorConfig, headers: list[_Header], signed: list[str]) -> bytes:
    """The signed header fields, bottom-up per name, canonicalized (RFC 6376 §5.4.2)."""
    remaining: dict[bytes, list[_Header]] = {}
    for h in headers:
        remaining.setdefault(h.lname, []).append(h)
    out: list[bytes] = []
    for name in signed:
        instances = remaining.get(name.lower().encode("ascii", "replace"))
        if not instances:
            continue
        h = instances.pop()
        out.append(_relaxed_header(h.raw) + b"\r\n" if sel.header_relaxed else h.raw)
    return b"".join(out)


def _sign_digest(sel: SelectorConfig, data: bytes) -> bytes:
    if sel.hash not in _HASHES:
        raise DKIMError(f"unsupported hash {sel.hash!r} for selector {sel.selector!r}")
    digest = _HASHES[sel.hash](data).digest()
    key = sel.key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        if sel.hash != "sha256":
            raise DKIMError(f"ed25519 selector {sel.selector!r} requires sha256")
        # RFC 8463: PureEdDSA over the SHA-256 hash of the data.
        return key.sign(digest)
    if isinstance(key, rsa.RSAPrivateKey):
        algo = _CRYPTO_HASHES[sel.hash]()
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algo))
    raise DKIMError(f"unsupported key type {type(key).__name__} for selector {sel.selector!r}")


def _sign_parts(
    header_section: bytes, body_chunks: Iterable[bytes], *, domain: str,
    selectors: list[SelectorConfig], localpart_for_i: str | None, now: datetime,
) -> bytes:
    headers = _parse_header_section(header_section)
    nfrom = sum(1 for h in headers if h.lname == b"from")
    if nfrom != 1:
        raise DKIMError(f"message has {nfrom} from headers, need exactly 1")
    if not selectors:
        return b""
    try:
        domain_ascii = domain_to_ascii(domain.rstrip(".").lower())
    except UnicodeError as exc:
        raise DKIMError(f"invalid domain {domain!r}: {exc}") from None
    hashers = {(s.body_relaxed, s.hash): _BodyHasher(s.body_relaxed, s.hash) for s in selectors
               if s.hash in _HASHES}
    for chunk in body_chunks:
        for hasher in hashers.values():
            hasher.update(chunk)
    body_hashes = {k: v.digest() for k, v in hashers.items()}
    identity = _identity(localpart_for_i, domain_ascii)
    t = int(now.timestamp())
    out: list[str] = []
    for sel in selectors:
        if sel.hash not in _HASHES:
            raise DKIMError(f"unsupported hash {sel.hash!r} for selector {sel.selector!r}")
        bh = body_hashes[(sel.body_relaxed, sel.hash)]
        signed = _signed_header_names(sel, headers)
        unsigned = _signature_header(sel, domain_ascii, identity, signed, t, bh, b"").encode()
        unsigned = unsigned[:-2]  # the DKIM-Signature field itself is hashed without CRLF
        sig_field = _relaxed_header(unsigned) if sel.header_relaxed else unsigned
        data = _header_data(sel, headers, signed) + sig_field
        signature = _sign_digest(sel, data)
        out.append(_signature_header(sel, domain_ascii, identity, signed, t, bh, signature))
    return "".join(out).encode("ascii")


def _split_message(message: bytes) -> tuple[bytes, bytes]:
    """(header section without the empty line, body); no empty line = no body."""
    if message.startswith(b"\r\n"):
        return b"", message[2:]
    i = message.find(b"\r\n\r\n")
    if i < 0:
        return message, b""
    return message[: i + 2], message[i + 4:]


def _chunks(data: bytes, size: int = CHUNK) -> Iterator[bytes]:
    view = memoryview(data)
    for i in range(0, len(data), size):
        yield bytes(view[i:i + size])


def sign(
    message: bytes, *, domain: str, selectors: list[SelectorConfig], localpart_for_i: str | None,
    now: datetime,
) -> bytes:
    """``DKIM-Signature: ...\\r\\n`` lines for ``message`` (CRLF; headers + body).

    One header per selector, in the given order, to be prepended to the
    message. ``localpart_for_i=None`` leaves out ``i=``. Raises
    :class:`DKIMError` for a message without exactly one From header, or a
    header section that does not parse.
    """
    head, body = _split_message(message)
    return _sign_parts(head, _chunks(body), domain=domain, selectors=selectors,
                       localpart_for_i=localpart_for_i, now=now)


def sign_file(
    path: str | Path, *, prefix: bytes = b"", domain: str, selectors: list[SelectorConfig],
    localpart_for_i: str | None, now: datetime,
) -> bytes:
    """Like :func:`sign` for ``prefix`` + the file at ``path``, reading in chunks (blocking)."""
    with open(path, "rb") as f:
        buf = prefix
        # The header section: read until the empty line (bounded).
        while True:
            if buf.startswith(b"\r\n"):
                head, rest = b"", buf[2:]
                break
            i = buf.find(b"\r\n\r\n")
            if i >= 0:
                head, rest = buf[: i + 2], buf[i + 4:]
                break
            if len(buf) > MAX_HEADER_SECTION:
                raise DKIMError("header section too large")
            more = f.read(CHUNK)
            if not more:
                head, rest = buf, b""
                break
            buf += more

        def body() -> Iterator[bytes]:
            if rest:
                yield rest
            while chunk := f.read(CHUNK):
                yield chunk

        return _sign_parts(head, body(), domain=domain, selectors=selectors,
                           localpart_for_i=localpart_for_i, now=now)


# -- keys and config ----------------------------------------------------------------------


@dataclass
class _KeyCache:
    """Loaded keys by path, valid while the file's (mtime, size, inode) is unchanged."""

    entries: dict[Path, tuple[tuple[int, int, int], PrivateKey]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def cached(self, path: Path) -> PrivateKey | None:
        """The key if loaded before and the file is unchanged (one stat call)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        with self.lock:
            entry = self.entries.get(path)
        if entry is not None and entry[0] == (st.st_mtime_ns, st.st_size, st.st_ino):
            return entry[1]
        return None

    def load(self, path: Path) -> PrivateKey:
        """Load (blocking) unless cached."""
        key = self.cached(path)
        if key is not None:
            return key
        try:
            st = os.stat(path)
            loaded = load_pem_private_key_with_note(path)
        except (OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
            raise DKIMError(f"loading dkim private key {path}: {exc}") from None
        if isinstance(loaded, rsa.RSAPrivateKey):
            if loaded.key_size < 1024:
                raise DKIMError(f"dkim rsa key {path} has {loaded.key_size} bits, need at least 1024")
        elif not isinstance(loaded, ed25519.Ed25519PrivateKey):
            raise DKIMError(f"dkim key {path}: unsupported key type {type(loaded).__name__}")
        with self.lock:
            self.entries[path] = ((st.st_mtime_ns, st.st_size, st.st_ino), loaded)
        return loaded


KEYS = _KeyCache()


class _SelectorLike(Protocol):
    Hash: str
    Canonicalization: Any
    DontSealHeaders: bool
    Expiration: str
    PrivateKeyFile: str

    @property
    def hash(self) -> str: ...

    @property
    def headers(self) -> list[str]: ...


@dataclass(frozen=True)
class _Plan:
    """What to sign with, before keys are loaded: (name, selector config, key path)."""

    selectors: list[tuple[str, Any, Path]]


def _plan(config: Any, domain_conf: Any) -> _Plan:
    dkim = domain_conf.DKIM
    out: list[tuple[str, Any, Path]] = []
    for name in dkim.Sign:
        sel = dkim.Selectors.get(name)
        if sel is None:
            raise DKIMError(f"unknown dkim selector {name!r} in Sign")
        out.append((name, sel, Path(config.resolve_path(sel.PrivateKeyFile))))
    return _Plan(out)


def _resolve(plan: _Plan, load: Callable[[Path], PrivateKey]) -> list[SelectorConfig]:
    return [selector_from_config(name, sel, load(path)) for name, sel, path in plan.selectors]


def selector_from_config(name: str, sel: _SelectorLike, key: PrivateKey) -> SelectorConfig:
    """A :class:`SelectorConfig` from a ``DKIM.Selectors.<name>`` config entry."""
    expiration = 0
    if sel.Expiration:
        try:
            expiration = duration_ns(parse_duration(sel.Expiration)) // 1_000_000_000
        except ValueError as exc:
            raise DKIMError(f"selector {name!r}: {exc}") from None
    canon = sel.Canonicalization
    return SelectorConfig(
        selector=name,
        key=key,
        hash=sel.hash,
        header_relaxed=bool(getattr(canon, "HeaderRelaxed", False)),
        body_relaxed=bool(getattr(canon, "BodyRelaxed", False)),
        headers=tuple(sel.headers),
        seal_headers=not sel.DontSealHeaders,
        expiration_seconds=max(expiration, 0),
    )


def selectors_from_config(config: Any, domain_conf: Any) -> list[SelectorConfig]:
    """The domain's signing selectors with keys loaded (blocking on first use of a key)."""
    return _resolve(_plan(config, domain_conf), KEYS.load)


# -- the entry point for submission paths ----------------------------------------------------


@dataclass(frozen=True)
class MessageFile:
    """A message stored as ``prefix`` + the file at ``path`` (SMTP's spool file)."""

    path: Path | str
    prefix: bytes = b""


def _split_from(from_address: Any) -> tuple[str, str]:
    if isinstance(from_address, str):
        addr = parse_address(from_address)
        return addr.localpart, addr.domain
    return str(from_address.localpart), str(from_address.domain)


async def sign_for_domain(
    ctx: Any, message: bytes | MessageFile, from_address: Any, *,
    canonical_i: bool = False, strict: bool = False, now: datetime | None = None,
) -> bytes:
    """DKIM-Signature header lines for a message sent as ``from_address``.

    ``from_address`` is an address string or an object with ``localpart`` and
    ``domain``. ``canonical_i``: put the canonical localpart (catchall suffix
    removed, lowercased unless case-sensitive) in ``i=`` as SMTP submission
    does; the webapi uses the localpart as is. Returns ``b""`` when the domain
    is not configured or has no ``DKIM.Sign`` selectors. A signing failure is
    logged and returns ``b""``, or raises :class:`DKIMError` if ``strict``.
    """
    try:
        localpart, domain = _split_from(from_address)
        domain_conf = ctx.config.domain(domain)
        if domain_conf is None or not domain_conf.DKIM.Sign:
            return b""
        plan = _plan(ctx.config, domain_conf)
        if canonical_i:
            localpart = canonical_localpart(localpart, domain_conf)
        when = now or datetime.now(UTC)
        kwargs: dict[str, Any] = {
            "domain": domain, "localpart_for_i": localpart, "now": when,
        }
        # One stat() per key file on the trio thread (microseconds); loading a
        # key, reading a spool file or hashing a large body goes to a thread.
        cached = [KEYS.cached(path) for _, _, path in plan.selectors]
        if isinstance(message, bytes) and len(message) <= INLINE_MAX_BYTES and all(
            k is not None for k in cached
        ):
            keys = {path: k for (_, _, path), k in zip(plan.selectors, cached, strict=True) if k is not None}
            return sign(message, selectors=_resolve(plan, keys.__getitem__), **kwargs)

        def work() -> bytes:
            selectors = _resolve(plan, KEYS.load)
            if isinstance(message, MessageFile):
                return sign_file(message.path, prefix=message.prefix, selectors=selectors, **kwargs)
            return sign(message, selectors=selectors, **kwargs)

        return await trio.to_thread.run_sync(work)
    except Exception as exc:  # noqa: BLE001 - any signing failure: unsigned (SMTP) or typed error
        err = exc if isinstance(exc, DKIMError) else DKIMError(f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, DKIMError | ValueError | OSError):
            log.exception("unexpected error while dkim signing")
        if strict:
            raise err from None
        log.error("dkim sign for domain: %s (from %s); message sent unsigned", err, from_address)
        return b""
