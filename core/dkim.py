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
import dataclasses
import functools
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import trio

from core.address import domain_to_ascii, format_localpart, parse_address
from core.config.sconf import duration_ns, parse_duration
from core.config.validate import canonical_localpart
from core.mailauth import canon
from core.mailauth.headerwriter import HeaderWriter
from core.pem import load_pem_private_key_with_note

if TYPE_CHECKING:
    # cryptography is imported where keys are loaded or used (a server
    # that has signed nothing yet does without it).
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

    PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

log = logging.getLogger("moxtrio.dkim")


def __getattr__(name: str) -> Any:
    """``PrivateKey`` at run time (callers that check key types), importing cryptography then."""
    if name == "PrivateKey":
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

        return rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


#: Header fields signed when a selector lists none (mox's default list).
DEFAULT_HEADERS: tuple[str, ...] = (
    "From", "To", "Cc", "Bcc", "Reply-To", "References", "In-Reply-To", "Subject", "Date",
    "Message-Id", "Content-Type",
)
#: mox folds DKIM-Signature (and Received) headers at this line length.
MAX_LINE = 78
#: Messages up to this size (and with cached keys) are signed on the trio
#: thread: the thread hop costs more than the work (see tests/dkim timings).
INLINE_MAX_BYTES = 64 * 1024


def _crypto_hash(name: str) -> hashes.HashAlgorithm:
    from cryptography.hazmat.primitives import hashes

    algorithms: dict[str, Callable[[], hashes.HashAlgorithm]] = {
        "sha256": hashes.SHA256, "sha1": hashes.SHA1,
    }
    return algorithms[name]()


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

    @functools.cached_property
    def header_keys(self) -> tuple[bytes, ...]:
        """``headers`` as the lower-case bytes :class:`canon.Header` files fields under."""
        return tuple(name.lower().encode("ascii", "replace") for name in self.headers)

    @functools.cached_property
    def algorithm(self) -> str:
        from cryptography.hazmat.primitives.asymmetric import ed25519

        kind = "ed25519" if isinstance(self.key, ed25519.Ed25519PrivateKey) else "rsa"
        return f"{kind}-{self.hash}"

    @property
    def canonicalization(self) -> str:
        return ("relaxed" if self.header_relaxed else "simple") + "/" + (
            "relaxed" if self.body_relaxed else "simple"
        )


# -- header writing -------------------------------------------------------------------


def _identity(localpart: str | None, domain_ascii: str) -> str | None:
    if localpart is None:
        return None
    lp = format_localpart(localpart)
    if any(c in lp for c in "; \t\r\n") or not lp.isprintable():
        # Would break the tag list; the RFC lets i= omit the localpart.
        lp = ""
    return f"{lp}@{domain_ascii}"


def _unsigned_writer(
    sel: SelectorConfig, domain_ascii: str, identity: str | None, signed: list[str],
    t: int, body_hash: bytes,
) -> HeaderWriter:
    """The DKIM-Signature field up to its empty ``b=``: hashed as it is, then completed."""
    w = HeaderWriter(MAX_LINE)
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
    if signed:
        names = [name + ":" for name in signed]
        names[0] = "h=" + names[0]
        names[-1] = names[-1][:-1] + ";"
        w.add(" ", names[0])
        w.add("", *names[1:])
    w.add(" ", f"bh={base64.b64encode(body_hash).decode()};")
    w.add(" ", "b=")
    return w


# -- signing ------------------------------------------------------------------------------


def _signed_header_names(sel: SelectorConfig, headers: list[canon.Header]) -> tuple[list[str], list[bytes]]:
    """The ``h=`` names, and the same lower-cased as :class:`canon.Header` keys."""
    names = list(sel.headers)
    keys = list(sel.header_keys)
    if sel.seal_headers:
        counts: dict[bytes, int] = {}
        for h in headers:
            counts[h.lname] = counts.get(h.lname, 0) + 1
        for name, key in zip(sel.headers, sel.header_keys, strict=True):
            n = counts.get(key, 0)
            if n:
                names.extend([name] * n)
                keys.extend([key] * n)
    return names, keys


def _header_data(sel: SelectorConfig, headers: list[canon.Header], signed_keys: list[bytes]) -> bytes:
    """The signed header fields, bottom-up per name, canonicalized (RFC 6376 §5.4.2)."""
    remaining: dict[bytes, list[canon.Header]] = {}
    for h in headers:
        remaining.setdefault(h.lname, []).append(h)
    out: list[bytes] = []
    for key in signed_keys:
        instances = remaining.get(key)
        if not instances:
            continue
        h = instances.pop()
        out.append(canon.canonical_header(h.raw, sel.header_relaxed))
    return b"".join(out)


def _sign_digest(sel: SelectorConfig, data: bytes) -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

    if sel.hash not in canon.HASHES:
        raise DKIMError(f"unsupported hash {sel.hash!r} for selector {sel.selector!r}")
    digest = canon.HASHES[sel.hash](data).digest()
    key = sel.key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        if sel.hash != "sha256":
            raise DKIMError(f"ed25519 selector {sel.selector!r} requires sha256")
        # RFC 8463: PureEdDSA over the SHA-256 hash of the data.
        return key.sign(digest)
    if isinstance(key, rsa.RSAPrivateKey):
        algo = _crypto_hash(sel.hash)
        return key.sign(digest, padding.PKCS1v15(), utils.Prehashed(algo))
    raise DKIMError(f"unsupported key type {type(key).__name__} for selector {sel.selector!r}")


def _sign_parts(
    header_section: bytes, body_chunks: Iterable[bytes], *, domain: str,
    selectors: list[SelectorConfig], localpart_for_i: str | None, now: datetime,
) -> bytes:
    try:
        headers = canon.parse_header_section(header_section)
    except canon.MalformedMessage as exc:
        raise DKIMError(str(exc)) from None
    nfrom = sum(1 for h in headers if h.lname == b"from")
    if nfrom != 1:
        raise DKIMError(f"message has {nfrom} from headers, need exactly 1")
    if not selectors:
        return b""
    try:
        domain_ascii = domain_to_ascii(domain.rstrip(".").lower())
    except UnicodeError as exc:
        raise DKIMError(f"invalid domain {domain!r}: {exc}") from None
    hashers = {(s.body_relaxed, s.hash): canon.BodyHasher(s.body_relaxed, s.hash) for s in selectors
               if s.hash in canon.HASHES}
    for chunk in body_chunks:
        for hasher in hashers.values():
            hasher.update(chunk)
    body_hashes = {k: v.digest() for k, v in hashers.items()}
    identity = _identity(localpart_for_i, domain_ascii)
    t = int(now.timestamp())
    out: list[str] = []
    for sel in selectors:
        if sel.hash not in canon.HASHES:
            raise DKIMError(f"unsupported hash {sel.hash!r} for selector {sel.selector!r}")
        bh = body_hashes[(sel.body_relaxed, sel.hash)]
        signed, signed_keys = _signed_header_names(sel, headers)
        w = _unsigned_writer(sel, domain_ascii, identity, signed, t, bh)
        unsigned = w.value().encode()[:-2]  # the DKIM-Signature field itself is hashed without CRLF
        sig_field = canon.relaxed_header(unsigned) if sel.header_relaxed else unsigned
        data = _header_data(sel, headers, signed_keys) + sig_field
        w.add_wrap(base64.b64encode(_sign_digest(sel, data)).decode())
        out.append(w.value())
    return "".join(out).encode("ascii")


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
    head, body = canon.split_message(message)
    return _sign_parts(head, canon.chunks(body), domain=domain, selectors=selectors,
                       localpart_for_i=localpart_for_i, now=now)


def sign_file(
    path: str | Path, *, prefix: bytes = b"", domain: str, selectors: list[SelectorConfig],
    localpart_for_i: str | None, now: datetime,
) -> bytes:
    """Like :func:`sign` for ``prefix`` + the file at ``path``, reading in chunks (blocking)."""
    with open(path, "rb") as f:
        try:
            head, rest = canon.read_header_section(f, prefix)
        except canon.MalformedMessage as exc:
            raise DKIMError(str(exc)) from None
        return _sign_parts(head, canon.file_body(f, rest), domain=domain, selectors=selectors,
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
        from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

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


class _ResolvedCache:
    """Signing selectors as last resolved, per plan and extra header names.

    Valid while the plan is the same object (the same loaded config) and
    every key is the one :data:`KEYS` hands out now (a changed key file gives
    a new key object), so a Send does not rebuild its selectors each time.
    Only touched from the trio thread.
    """

    MAX = 256

    def __init__(self) -> None:
        self._entries: dict[tuple[int, tuple[str, ...]], tuple[_Plan, tuple[Any, ...], list[SelectorConfig]]] = {}

    def get(self, plan: _Plan, also: tuple[str, ...], keys: list[Any]) -> list[SelectorConfig] | None:
        entry = self._entries.get((id(plan), also))
        if entry is None or entry[0] is not plan or len(entry[1]) != len(keys):
            return None
        if any(a is not b for a, b in zip(entry[1], keys, strict=True)):
            return None
        return entry[2]

    def put(self, plan: _Plan, also: tuple[str, ...], keys: list[Any], selectors: list[SelectorConfig]) -> None:
        if len(self._entries) >= self.MAX:
            self._entries.clear()
        self._entries[(id(plan), also)] = (plan, tuple(keys), selectors)


_RESOLVED = _ResolvedCache()
#: Plans by (config, domain config) identity; see :func:`_cached_plan`.
_PLANS: dict[tuple[int, int], tuple[Any, Any, _Plan]] = {}


def _cached_plan(config: Any, domain_conf: Any) -> _Plan:
    """:func:`_plan`, once per loaded config and domain (a reload makes new objects)."""
    key = (id(config), id(domain_conf))
    entry = _PLANS.get(key)
    if entry is not None and entry[0] is config and entry[1] is domain_conf:
        return entry[2]
    plan = _plan(config, domain_conf)
    if len(_PLANS) >= _ResolvedCache.MAX:
        _PLANS.clear()
    _PLANS[key] = (config, domain_conf, plan)
    return plan


def _resolve(plan: _Plan, load: Callable[[Path], PrivateKey]) -> list[SelectorConfig]:
    return [selector_from_config(name, sel, load(path)) for name, sel, path in plan.selectors]


def _also_sign(selectors: list[SelectorConfig], names: tuple[str, ...]) -> list[SelectorConfig]:
    """Selectors that also sign ``names`` (those not yet in their header list)."""
    if not names:
        return selectors
    out = []
    for sel in selectors:
        have = {h.lower() for h in sel.headers}
        extra = tuple(dict.fromkeys(n for n in names if n.lower() not in have))
        out.append(dataclasses.replace(sel, headers=sel.headers + extra) if extra else sel)
    return out


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
    also_sign: tuple[str, ...] = (),
) -> bytes:
    """DKIM-Signature header lines for a message sent as ``from_address``.

    ``also_sign`` names header fields to sign beyond each selector's list
    (the fields submission hooks added), so a plugin's fields are covered.

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
        plan = _cached_plan(ctx.config, domain_conf)
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
            selectors = _RESOLVED.get(plan, also_sign, cached)
            if selectors is None:
                keys = {path: k for (_, _, path), k in zip(plan.selectors, cached, strict=True) if k is not None}
                selectors = _also_sign(_resolve(plan, keys.__getitem__), also_sign)
                _RESOLVED.put(plan, also_sign, cached, selectors)
            return sign(message, selectors=selectors, **kwargs)

        def work() -> bytes:
            selectors = _also_sign(_resolve(plan, KEYS.load), also_sign)
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
