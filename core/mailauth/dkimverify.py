"""DKIM verification (RFC 6376, Ed25519 per RFC 8463) of incoming messages.

Every ``DKIM-Signature`` header gets a :class:`Result`, as mox reports them:
``pass``, ``fail`` (signature or body hash mismatch), ``permerror``
(malformed signature or key record, expired, revoked or missing key, wrong
key type), ``temperror`` (DNS failed), ``policy`` (refused by the caller's
policy; :func:`mox_policy` is mox's default) or ``none`` (a failing
signature from a key in test mode, ``t=y``).

Canonicalization is :mod:`core.mailauth.canon`, the same code the signer
uses. The key records of all signatures are looked up concurrently; then
the body is hashed once per distinct (canonicalization, hash, ``l=``) from
the file in chunks, so any size is verified without holding the message in
memory, and for messages past :data:`INLINE_MAX_BYTES` the hashing and the
public-key operations run in a worker thread, off the trio loop.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import trio
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils

from core.mailauth.canon import (
    HASHES,
    BodyHasher,
    Header,
    MalformedMessage,
    canonical_header,
    chunks,
    file_body,
    parse_header_section,
    read_header_section,
    relaxed_header,
    split_message,
)
from core.mailauth.lookup import Lookup, TempError
from core.mailauth.orgdomain import is_public_suffix

PASS, FAIL, NONE, POLICY, NEUTRAL, TEMPERROR, PERMERROR = (
    "pass", "fail", "none", "policy", "neutral", "temperror", "permerror",
)
#: Up to this size a message is verified on the trio thread: hashing 256 KiB
#: takes well under a millisecond (less than receiving it over SMTP cost the
#: loop), while a worker-thread round trip costs about as much CPU again.
INLINE_MAX_BYTES = 256 * 1024
_CRYPTO_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}
_TAG = re.compile(r"^\s*([A-Za-z][A-Za-z0-9_]*)\s*=(.*)$", re.S)
_WSP = re.compile(r"[ \t\r\n]+")
_QP_ESCAPE = re.compile(r"=([0-9A-Fa-f]{2})")
_B_TAG = re.compile(rb"^([ \t\r\n]*b[ \t\r\n]*=)")


class _Perm(Exception):
    pass


@dataclass
class Signature:
    """A parsed DKIM-Signature header."""

    domain: str
    selector: str
    algorithm_sign: str  # "rsa" / "ed25519"
    algorithm_hash: str  # "sha256" / "sha1"
    signature: bytes
    body_hash: bytes
    signed_headers: list[str]
    header_relaxed: bool
    body_relaxed: bool
    identity: str | None = None
    length: int | None = None
    timestamp: int | None = None
    expires: int | None = None
    raw: bytes = b""

    @property
    def algorithm(self) -> str:
        return f"{self.algorithm_sign}-{self.algorithm_hash}"


@dataclass
class KeyRecord:
    """A parsed ``<selector>._domainkey.<domain>`` TXT record."""

    key_type: str = "rsa"
    hashes: list[str] = field(default_factory=list)
    services: list[str] = field(default_factory=lambda: ["*"])
    flags: list[str] = field(default_factory=list)
    public_key: rsa.RSAPublicKey | ed25519.Ed25519PublicKey | None = None

    @property
    def rsa_bits(self) -> int:
        return self.public_key.key_size if isinstance(self.public_key, rsa.RSAPublicKey) else 0


@dataclass
class Result:
    """The outcome for one DKIM-Signature header."""

    status: str
    sig: Signature | None = None
    record: KeyRecord | None = None
    error: str = ""


def _tags(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for part in text.split(";"):
        if not part.strip():
            continue
        m = _TAG.match(part)
        if m is None:
            raise _Perm(f"malformed tag {part.strip()!r}")
        name = m.group(1)
        if name in out:
            raise _Perm(f"duplicate tag {name!r}")
        out[name] = m.group(2).strip(" \t\r\n")
    return out


def _b64(value: str) -> bytes:
    try:
        return base64.b64decode(_WSP.sub("", value), validate=True)
    except (binascii.Error, ValueError):
        raise _Perm("malformed base64") from None


def _qp_decode(value: str) -> str:
    """dkim-quoted-printable (RFC 6376 §2.11) as used in ``i=``."""
    raw = _WSP.sub("", value)
    return _QP_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), raw) if "=" in raw else raw


def parse_signature(raw: bytes) -> Signature:
    """Parse one DKIM-Signature field (name included); raises ``_Perm``."""
    value = raw.partition(b":")[2].decode("utf-8", "replace")
    t = _tags(value)
    for required in ("v", "a", "b", "bh", "d", "h", "s"):
        if required not in t:
            raise _Perm(f"missing required tag {required}=")
    if t["v"] != "1":
        raise _Perm(f"unsupported version {t['v']!r}")
    sign, _, hash_ = t["a"].lower().partition("-")
    canon = t.get("c", "simple").lower()
    hcanon, _, bcanon = canon.partition("/")
    bcanon = bcanon or "simple"
    if hcanon not in ("simple", "relaxed") or bcanon not in ("simple", "relaxed"):
        raise _Perm(f"dkim: unknown canonicalization: {canon!r}")
    domain = t["d"].lower().rstrip(".")
    selector = t["s"].lower()
    if not domain or not selector:
        raise _Perm("empty d= or s=")
    signed = [h.strip() for h in _WSP.sub("", t["h"]).split(":")]
    if not all(signed):
        raise _Perm("empty header name in h=")
    identity = _qp_decode(t["i"]) if "i" in t else None
    if identity is not None:
        idom = identity.rpartition("@")[2].lower().rstrip(".")
        if "@" not in identity or (idom != domain and not idom.endswith("." + domain)):
            raise _Perm("dkim: i= identity domain must be d= domain or a subdomain")
    length = timestamp = expires = None
    try:
        if "l" in t:
            length = int(t["l"])
        if "t" in t:
            timestamp = int(t["t"])
        if "x" in t:
            expires = int(t["x"])
    except ValueError:
        raise _Perm("malformed number in l=, t= or x=") from None
    if length is not None and length < 0:
        raise _Perm("negative l=")
    if timestamp is not None and expires is not None and expires < timestamp:
        raise _Perm("x= before t=")
    if "q" in t and "dns/txt" not in [q.strip().lower() for q in t["q"].split(":")]:
        raise _Perm("dkim: no recognized query method: need dns/txt")
    return Signature(
        domain=domain, selector=selector, algorithm_sign=sign, algorithm_hash=hash_,
        signature=_b64(t["b"]), body_hash=_b64(t["bh"]), signed_headers=signed,
        header_relaxed=hcanon == "relaxed", body_relaxed=bcanon == "relaxed",
        identity=identity, length=length, timestamp=timestamp, expires=expires, raw=raw,
    )


@functools.lru_cache(maxsize=1024)
def parse_key_record(txt: str) -> KeyRecord:
    """Parse a DKIM key record; raises ``_Perm`` for syntax errors.

    Cached by record text (loading a public key is the costly part); the
    returned record is shared and must not be modified.
    """
    t = _tags(txt)
    if "v" in t and (t["v"] != "DKIM1" or not txt.lstrip().startswith("v")):
        raise _Perm("dkim: syntax error in dkim dns record: bad v=")
    if "p" not in t:
        raise _Perm("dkim: syntax error in dkim dns record: missing p=")
    rec = KeyRecord(
        key_type=t.get("k", "rsa").lower(),
        hashes=[h.strip().lower() for h in t["h"].split(":")] if "h" in t else [],
        services=[s.strip().lower() for s in t["s"].split(":")] if "s" in t else ["*"],
        flags=[f.strip().lower() for f in t["t"].split(":")] if "t" in t else [],
    )
    p = _WSP.sub("", t["p"])
    if not p:
        return rec  # revoked
    data = _b64(p)
    try:
        if rec.key_type == "rsa":
            key = serialization.load_der_public_key(data)
            if not isinstance(key, rsa.RSAPublicKey):
                raise _Perm("dkim: key in record is not rsa")
            rec.public_key = key
        elif rec.key_type == "ed25519":
            rec.public_key = ed25519.Ed25519PublicKey.from_public_bytes(data)
        else:
            raise _Perm(f"dkim: unknown key type {rec.key_type!r}")
    except ValueError as exc:
        raise _Perm(f"dkim: syntax error in dkim dns record: bad public key: {exc}") from None
    return rec


async def lookup_key(lookup: Lookup, sig: Signature) -> Result | KeyRecord:
    """The key record for ``sig``, or the Result explaining why there is none."""
    name = f"{sig.selector}._domainkey.{sig.domain}"
    try:
        txts = await lookup.txt(name)
    except TempError as exc:
        return Result(TEMPERROR, sig, error=f"dkim: lookup of dkim dns record: dns name {name!r}: {exc}")
    if not txts:
        return Result(PERMERROR, sig, error=f"dkim: no dkim dns record for selector and domain: dns name {name!r}")
    records: list[KeyRecord] = []
    errors: list[str] = []
    for txt in txts:
        try:
            records.append(parse_key_record(txt))
        except _Perm as exc:
            errors.append(str(exc))
    if len(records) > 1:
        return Result(TEMPERROR, sig, error=f"dkim: multiple dkim dns record for selector and domain: dns name {name!r}")
    if not records:
        return Result(PERMERROR, sig, error=errors[0])
    return records[0]


# -- the CPU part --------------------------------------------------------------------------


def _signature_field_for_hash(raw: bytes, relaxed: bool) -> bytes:
    """The DKIM-Signature field with b='s value removed, canonicalized, without CRLF."""
    name, _, value = raw.partition(b":")
    parts = value.split(b";")
    for i, part in enumerate(parts):
        m = _B_TAG.match(part)
        if m is not None:
            parts[i] = m.group(1)
    field_ = name + b":" + b";".join(parts)
    if field_.endswith(b"\r\n"):
        field_ = field_[:-2]
    return relaxed_header(field_) if relaxed else field_


def _header_hash_input(sig: Signature, headers: list[Header]) -> bytes:
    remaining: dict[bytes, list[Header]] = {}
    for h in headers:
        remaining.setdefault(h.lname, []).append(h)
    out: list[bytes] = []
    for name in sig.signed_headers:
        instances = remaining.get(name.lower().encode("ascii", "replace"))
        if not instances:
            continue
        out.append(canonical_header(instances.pop().raw, sig.header_relaxed))
    out.append(_signature_field_for_hash(sig.raw, sig.header_relaxed))
    return b"".join(out)


def _check_record(sig: Signature, rec: KeyRecord) -> Result | None:
    if rec.hashes and sig.algorithm_hash not in rec.hashes:
        return Result(PERMERROR, sig, rec, "dkim: hash algorithm not allowed by dns record")
    if rec.key_type != sig.algorithm_sign:
        return Result(PERMERROR, sig, rec, f"dkim: signature algorithm mismatch with dns record: "
                      f"dkim dns record requires algorithm {rec.key_type!r}, message has {sig.algorithm_sign!r}")
    if rec.public_key is None:
        return Result(PERMERROR, sig, rec, "dkim: key has been revoked")
    if rec.rsa_bits and rec.rsa_bits < 1024:
        return Result(PERMERROR, sig, rec, "dkim: key is too weak, need at least 1024 bits for rsa")
    if not ({"*", "email"} & set(rec.services)):
        return Result(PERMERROR, sig, rec, "dkim: dns record not allowed for use with email")
    if "s" in rec.flags and sig.identity is not None:
        if sig.identity.rpartition("@")[2].lower() != sig.domain:
            return Result(PERMERROR, sig, rec, "dkim: dns record disallows mismatch of domain (d=) and identity (i=)")
    return None


def _verify_crypto(sig: Signature, rec: KeyRecord, data: bytes) -> bool:
    digest = HASHES[sig.algorithm_hash](data).digest()
    key = rec.public_key
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(sig.signature, digest)
        elif isinstance(key, rsa.RSAPublicKey):
            key.verify(sig.signature, digest, padding.PKCS1v15(),
                       utils.Prehashed(_CRYPTO_HASHES[sig.algorithm_hash]()))
        else:
            return False
    except InvalidSignature:
        return False
    return True


def _finish(
    pending: list[tuple[int, Signature, KeyRecord]], headers: list[Header], body: Iterable[bytes],
) -> dict[int, Result]:
    """Body hashes in one pass over ``body``, then each signature's crypto check."""
    hashers: dict[tuple[bool, str, int | None], BodyHasher] = {}
    for _, sig, _ in pending:
        key = (sig.body_relaxed, sig.algorithm_hash, sig.length)
        if key not in hashers:
            hashers[key] = BodyHasher(sig.body_relaxed, sig.algorithm_hash, sig.length)
    if hashers:
        for chunk in body:
            for h in hashers.values():
                h.update(chunk)
    digests = {k: (h.digest(), h.length) for k, h in hashers.items()}
    out: dict[int, Result] = {}
    for i, sig, rec in pending:
        if not _verify_crypto(sig, rec, _header_hash_input(sig, headers)):
            out[i] = Result(FAIL, sig, rec, f"dkim: signature verification failed: {sig.algorithm_sign} verification")
            continue
        bh, length = digests[(sig.body_relaxed, sig.algorithm_hash, sig.length)]
        if sig.length is not None and sig.length > length:
            out[i] = Result(PERMERROR, sig, rec, "dkim: l= is larger than the body")
        elif bh != sig.body_hash:
            out[i] = Result(FAIL, sig, rec, f"dkim: body hash does not match: signature bodyhash "
                            f"{sig.body_hash.hex()} != calculated bodyhash {bh.hex()}")
        else:
            out[i] = Result(PASS, sig, rec)
    return out


# -- policy ----------------------------------------------------------------------------


def mox_policy(sig: Signature) -> str | None:
    """mox's default: no ``l=``, and Subject must be signed. Returns the refusal or None."""
    if sig.length is not None:
        return "l= for length not acceptable"
    if not any(h.lower() == "subject" for h in sig.signed_headers):
        return "required header fields missing from signature: subject"
    return None


# -- entry points ------------------------------------------------------------------------


def _prepare(
    headers: list[Header], now: int, policy: Callable[[Signature], str | None] | None,
    localhost_domain: bool,
) -> list[Result | Signature]:
    """Parse and pre-check every DKIM-Signature; returns entries in header order."""
    out: list[Result | Signature] = []
    for h in headers:
        if h.lname != b"dkim-signature":
            continue
        try:
            sig = parse_signature(h.raw)
        except _Perm as exc:
            out.append(Result(PERMERROR, None, error=f"parsing DKIM-Signature header: {exc}"))
            continue
        if not any(x.lower() == "from" for x in sig.signed_headers):
            out.append(Result(PERMERROR, sig, error='dkim: bad from headers: required "from" header not signed'))
        elif sig.expires is not None and sig.expires < now:
            when = datetime.fromtimestamp(sig.expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            out.append(Result(PERMERROR, sig, error=f'dkim: signature has expired: expiration time "{when}"'))
        # localhost is a public suffix, refused as a signing domain unless
        # the server treats it as a mail domain (mox's local mode).
        elif is_public_suffix(sig.domain) and not (localhost_domain and sig.domain == "localhost"):
            out.append(Result(PERMERROR, sig, error=f"dkim: signed domain is top-level domain, above organizational domain: {sig.domain}"))
        elif sig.algorithm_hash not in HASHES or sig.algorithm_sign not in ("rsa", "ed25519"):
            out.append(Result(PERMERROR, sig, error=f"dkim: unknown signature algorithm: {sig.algorithm!r}"))
        elif policy is not None and (refusal := policy(sig)) is not None:
            out.append(Result(POLICY, sig, error=f"dkim: signature rejected by policy: {refusal}"))
        else:
            out.append(sig)
    return out


async def _keys(lookup: Lookup, entries: list[Result | Signature]) -> list[Result | tuple[Signature, KeyRecord]]:
    """Look up the keys of all pending signatures concurrently."""
    found: dict[int, Result | KeyRecord] = {}

    async def one(i: int, sig: Signature) -> None:
        found[i] = await lookup_key(lookup, sig)

    todo = [(i, sig) for i, sig in enumerate(entries) if isinstance(sig, Signature)]
    if len(todo) == 1:
        await one(*todo[0])  # the common case: no tasks needed
    elif todo:
        async with trio.open_nursery() as nursery:
            for i, sig in todo:
                nursery.start_soon(one, i, sig)
    out: list[Result | tuple[Signature, KeyRecord]] = []
    for i, e in enumerate(entries):
        if isinstance(e, Result):
            out.append(e)
            continue
        rec = found[i]
        if isinstance(rec, Result):
            out.append(rec)
            continue
        bad = _check_record(e, rec)
        out.append(bad if bad is not None else (e, rec))
    return out


def _apply_test_mode(results: list[Result]) -> list[Result]:
    for r in results:
        if r.record is not None and "y" in r.record.flags and r.status != PASS:
            r.status = NONE
    return results


async def _run(
    lookup: Lookup, headers: list[Header], body: Callable[[], Iterable[bytes]], *, offload: bool,
    policy: Callable[[Signature], str | None] | None, localhost_domain: bool, now: int | None,
) -> list[Result]:
    entries = _prepare(headers, now if now is not None else int(time.time()),
                       policy, localhost_domain)
    if not entries:
        return []
    checked = await _keys(lookup, entries)
    pending = [(i, c[0], c[1]) for i, c in enumerate(checked) if isinstance(c, tuple)]
    done: dict[int, Result] = {}
    if pending:
        def work() -> dict[int, Result]:
            return _finish(pending, headers, body())

        done = await trio.to_thread.run_sync(work) if offload else work()
    return _apply_test_mode([done[i] if isinstance(c, tuple) else c for i, c in enumerate(checked)])


async def verify_file(
    lookup: Lookup, path: str | Path, *, size: int, prefix: bytes = b"", data: bytes | None = None,
    policy: Callable[[Signature], str | None] | None = None, localhost_domain: bool = False,
    now: int | None = None,
) -> list[Result]:
    """Verify every DKIM-Signature of ``prefix`` + the file at ``path``.

    ``size`` is the message's size (prefix included): small messages are
    verified on the trio thread, larger ones hashed in a worker thread.
    ``data``, when the caller already holds the whole message (prefix
    included), saves reading the file again. ``localhost_domain`` verifies
    signatures by ``d=localhost`` (see :class:`core.services.OwnDomainAnswers`).
    Raises :class:`MalformedMessage` when the header section does not parse.
    """
    offload = size > INLINE_MAX_BYTES
    if data is not None:
        head, body = split_message(data)
        return await _run(lookup, parse_header_section(head), lambda: chunks(body), offload=offload,
                          policy=policy, localhost_domain=localhost_domain, now=now)

    def read_head() -> bytes:
        with open(path, "rb") as f:
            return read_header_section(f, prefix)[0]

    def file_chunks() -> Iterator[bytes]:
        with open(path, "rb") as f:
            _, rest = read_header_section(f, prefix)
            yield from file_body(f, rest)

    head = await trio.to_thread.run_sync(read_head) if offload else read_head()
    return await _run(lookup, parse_header_section(head), file_chunks, offload=offload,
                      policy=policy, localhost_domain=localhost_domain, now=now)


async def verify(
    lookup: Lookup, message: bytes, *, policy: Callable[[Signature], str | None] | None = None,
    localhost_domain: bool = False, now: int | None = None,
) -> list[Result]:
    """Verify a message held in memory, on the calling thread (tests, small messages)."""
    head, body = split_message(message)
    return await _run(lookup, parse_header_section(head), lambda: chunks(body), offload=False,
                      policy=policy, localhost_domain=localhost_domain, now=now)


__all__ = [
    "KeyRecord", "MalformedMessage", "Result", "Signature", "mox_policy", "parse_key_record",
    "parse_signature", "verify", "verify_file",
]
