"""DKIM verification against an independent signer (dkimpy) and the RFCs' fixed vectors."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from core.dkim import SelectorConfig, sign
from core.mailauth import dkimverify
from core.mailauth.lookup import NoRecords, TempError
from tests.dkim.helpers import ed_key, rsa_key, txt_record

DATA = Path(__file__).parent.parent / "data" / "dkim"

MESSAGE = (
    b"From: Joe <joe@example.org>\r\n"
    b"To: Suzie <suzie@example.net>\r\n"
    b"Subject: dinner\r\n"
    b"Date: Fri, 11 Jul 2003 21:00:37 -0700\r\n"
    b"Message-ID: <1@example.org>\r\n"
    b"\r\n"
    b"Hi.  \r\n\r\nWe lost the\t game.\r\n\r\n\r\n"
)


class DictLookup(NoRecords):
    """TXT records from a dict; names listed in ``failing`` fail temporarily; nothing else."""

    def __init__(self, txt: dict[str, list[str]], failing: tuple[str, ...] = ()) -> None:
        self.txt_records = txt
        self.failing = failing

    async def txt(self, name: str) -> list[str]:
        if name in self.failing:
            raise TempError("i/o timeout")
        return self.txt_records.get(name, [])


def _dkimpy_key(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        raw = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                serialization.NoEncryption())
        return base64.b64encode(raw)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())


def dkimpy_sign(message: bytes, key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, *,
                canon: tuple[bytes, bytes] = (b"relaxed", b"relaxed"), length: bool = False,
                selector: str = "sel", domain: str = "example.org") -> bytes:
    algo = b"ed25519-sha256" if isinstance(key, ed25519.Ed25519PrivateKey) else b"rsa-sha256"
    sig = dkimpy.sign(message, selector.encode(), domain.encode(), _dkimpy_key(key), canonicalize=canon,
                      signature_algorithm=algo, length=length,
                      include_headers=[b"from", b"to", b"subject", b"date", b"message-id"])
    return bytes(sig) + message


def lookup_for(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey, selector: str = "sel",
               domain: str = "example.org") -> DictLookup:
    return DictLookup({f"{selector}._domainkey.{domain}": [txt_record(key).decode()]})


KEYS = {"rsa": rsa_key, "ed25519": ed_key}
CANONS = [(b"simple", b"simple"), (b"relaxed", b"relaxed"), (b"relaxed", b"simple"), (b"simple", b"relaxed")]


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("canon", CANONS, ids=lambda c: (c[0] + b"/" + c[1]).decode())
async def test_dkimpy_signed_passes(kind: str, canon: tuple[bytes, bytes]) -> None:
    key = KEYS[kind]()
    signed = dkimpy_sign(MESSAGE, key, canon=canon)
    results = await dkimverify.verify(lookup_for(key), signed)
    assert [r.status for r in results] == ["pass"], results
    assert results[0].sig is not None and results[0].sig.domain == "example.org"
    assert results[0].sig.algorithm == f"{kind}-sha256"


TAMPER = {
    "header": ((b"Subject: dinner", b"Subject: lunch"), "signature verification failed"),
    "body": ((b"lost", b"won"), "body hash does not match"),
}


@pytest.mark.parametrize("kind", sorted(KEYS))
@pytest.mark.parametrize("part", sorted(TAMPER))
async def test_tampered_fails(kind: str, part: str) -> None:
    key = KEYS[kind]()
    (old, new), error = TAMPER[part]
    signed = dkimpy_sign(MESSAGE, key).replace(old, new)
    results = await dkimverify.verify(lookup_for(key), signed)
    assert results[0].status == "fail"
    assert error in results[0].error


async def test_relaxed_tolerates_whitespace_simple_does_not() -> None:
    key = ed_key()
    relaxed = dkimpy_sign(MESSAGE, key, canon=(b"relaxed", b"relaxed"))
    simple = dkimpy_sign(MESSAGE, key, canon=(b"simple", b"simple"))
    def rewrap(m: bytes) -> bytes:
        return m.replace(b"Subject: dinner", b"Subject:   dinner ").replace(b"the\t game", b"the game")
    assert [r.status for r in await dkimverify.verify(lookup_for(key), rewrap(relaxed))] == ["pass"]
    assert [r.status for r in await dkimverify.verify(lookup_for(key), rewrap(simple))] == ["fail"]


async def test_length_tag_covers_signed_part_only() -> None:
    key = rsa_key()
    signed = dkimpy_sign(MESSAGE, key, length=True) + b"appended by a mailing list\r\n"
    results = await dkimverify.verify(lookup_for(key), signed)
    assert [r.status for r in results] == ["pass"]
    assert results[0].sig is not None and results[0].sig.length is not None
    # mox's default policy refuses l= signatures (the appended part is unauthenticated).
    policed = await dkimverify.verify(lookup_for(key), signed, policy=dkimverify.mox_policy)
    assert [r.status for r in policed] == ["policy"]
    assert "l= for length not acceptable" in policed[0].error


async def test_expired_signature_is_permerror() -> None:
    key = ed_key()
    sel = SelectorConfig("sel", key, expiration_seconds=3600)
    header = sign(MESSAGE, domain="example.org", selectors=[sel], localpart_for_i=None,
                  now=datetime(2020, 1, 1, tzinfo=UTC))
    results = await dkimverify.verify(lookup_for(key), header + MESSAGE)
    assert results[0].status == "permerror"
    assert "signature has expired" in results[0].error
    # The same signature checked "in 2020" passes: only the expiry made it fail.
    ok = await dkimverify.verify(lookup_for(key), header + MESSAGE, now=1577836800 + 60)
    assert ok[0].status == "pass"


async def test_revoked_key_is_permerror() -> None:
    key = rsa_key()
    signed = dkimpy_sign(MESSAGE, key)
    lookup = DictLookup({"sel._domainkey.example.org": ["v=DKIM1; k=rsa; p="]})
    results = await dkimverify.verify(lookup, signed)
    assert results[0].status == "permerror"
    assert results[0].error == "dkim: key has been revoked"


async def test_missing_key_is_permerror() -> None:
    signed = dkimpy_sign(MESSAGE, rsa_key())
    results = await dkimverify.verify(DictLookup({}), signed)
    assert results[0].status == "permerror"
    assert "no dkim dns record" in results[0].error


async def test_dns_failure_is_temperror() -> None:
    signed = dkimpy_sign(MESSAGE, rsa_key())
    results = await dkimverify.verify(DictLookup({}, failing=("sel._domainkey.example.org",)), signed)
    assert results[0].status == "temperror"


async def test_wrong_key_type_is_permerror() -> None:
    signed = dkimpy_sign(MESSAGE, ed_key())
    # The record publishes an RSA key for a signature made with ed25519.
    results = await dkimverify.verify(lookup_for(rsa_key()), signed)
    assert results[0].status == "permerror"
    assert "signature algorithm mismatch" in results[0].error


async def test_wrong_key_fails() -> None:
    signed = dkimpy_sign(MESSAGE, ed_key())
    results = await dkimverify.verify(lookup_for(ed_key()), signed)
    assert results[0].status == "fail"


async def test_key_record_restrictions() -> None:
    key = rsa_key()
    signed = dkimpy_sign(MESSAGE, key)
    p = txt_record(key).decode().split("p=", 1)[1]
    cases = {
        f"v=DKIM1; h=sha1; p={p}": "hash algorithm not allowed",
        f"v=DKIM1; s=other; p={p}": "not allowed for use with email",
        f"v=DKIM1; k=rsa; p={p[:20]}": "syntax error",
    }
    for record, error in cases.items():
        results = await dkimverify.verify(DictLookup({"sel._domainkey.example.org": [record]}), signed)
        assert results[0].status == "permerror", record
        assert error in results[0].error, (record, results[0].error)
    ok = await dkimverify.verify(DictLookup({"sel._domainkey.example.org": [f"v=DKIM1; h=sha256; t=s; p={p}"]}), signed)
    assert ok[0].status == "pass"


async def test_test_mode_failure_is_none() -> None:
    key = rsa_key()
    signed = dkimpy_sign(MESSAGE, key).replace(b"lost", b"won")
    p = txt_record(key).decode().split("p=", 1)[1]
    results = await dkimverify.verify(DictLookup({"sel._domainkey.example.org": [f"v=DKIM1; t=y; p={p}"]}), signed)
    assert results[0].status == "none"


async def test_several_signatures_each_get_a_result() -> None:
    k1, k2 = rsa_key(), ed_key()
    once = dkimpy_sign(MESSAGE, k1, selector="one")
    twice = dkimpy_sign(once, k2, selector="two", domain="other.example")
    lookup = DictLookup({
        "one._domainkey.example.org": [txt_record(k1).decode()],
        "two._domainkey.other.example": [txt_record(k2).decode()],
    })
    results = await dkimverify.verify(lookup, twice)
    assert [(r.status, r.sig.domain if r.sig else "") for r in results] == [
        ("pass", "other.example"), ("pass", "example.org")]


async def test_from_must_be_signed_and_tld_refused() -> None:
    key = rsa_key()
    # dkimpy refuses to sign without From; our signer does what it is told.
    sel = SelectorConfig("sel", key, headers=("Subject",), seal_headers=False)
    sig = sign(MESSAGE, domain="example.org", selectors=[sel], localpart_for_i=None, now=datetime.now(UTC))
    results = await dkimverify.verify(lookup_for(key), sig + MESSAGE)
    assert results[0].status == "permerror" and '"from" header not signed' in results[0].error
    tld = dkimpy_sign(MESSAGE, key, domain="org")
    results = await dkimverify.verify(lookup_for(key, domain="org"), tld)
    assert results[0].status == "permerror" and "top-level domain" in results[0].error


async def test_malformed_signature_is_permerror() -> None:
    msg = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org\r\n" + MESSAGE
    results = await dkimverify.verify(DictLookup({}), msg)
    assert results[0].status == "permerror" and results[0].sig is None


async def test_large_body_from_file(tmp_path: Path) -> None:
    """A body of several MB is verified from the file (worker thread, chunked)."""
    key = ed_key()
    body = b"".join(b"line %d of a long message with  spaces \t\r\n" % i for i in range(120_000))
    signed = dkimpy_sign(MESSAGE.split(b"\r\n\r\n")[0] + b"\r\n\r\n" + body, key)
    path = tmp_path / "m.eml"
    path.write_bytes(signed)
    assert path.stat().st_size > dkimverify.INLINE_MAX_BYTES
    results = await dkimverify.verify_file(lookup_for(key), path, size=path.stat().st_size)
    assert [r.status for r in results] == ["pass"]
    path.write_bytes(signed[:-10] + b"tampered\r\n")
    results = await dkimverify.verify_file(lookup_for(key), path, size=path.stat().st_size)
    assert [r.status for r in results] == ["fail"]


# -- fixed vectors ---------------------------------------------------------------------------


def _vector(name: str) -> bytes:
    return (DATA / name).read_bytes().replace(b"\n", b"\r\n")


async def test_rfc8463_appendix_a() -> None:
    lookup = DictLookup({
        "brisbane._domainkey.football.example.com": ["v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="],
        "test._domainkey.football.example.com": [
            "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY"
            "/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryO"
            "TIKT+l/K4w3QIDAQAB"],
    })
    results = await dkimverify.verify(lookup, _vector("rfc8463-A.3.eml"))
    assert [(r.status, r.sig.algorithm if r.sig else "") for r in results] == [
        ("pass", "ed25519-sha256"), ("pass", "rsa-sha256")]
    assert results[0].sig is not None and results[0].sig.identity == "@football.example.com"


async def test_rfc6376_appendix_a2() -> None:
    lookup = DictLookup({"brisbane._domainkey.example.com": [
        "v=DKIM1; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDwIRP/UC3SBsEmGqZ9ZJW3/DkMoGeLnQg1fWn7/zYtIxN2SnFCjxOCKG9v3b4jYf"
        "cTNh5ijSsq631uBItLa7od+v/RtdC2UzJ1lWT947qR+Rcac2gbto/NMqJ0fzfVjH4OuKhitdY9tf6mcwGjaNBcWToIMmPSPDdQPNUYckcQ2QIDAQAB"]})
    results = await dkimverify.verify(lookup, _vector("rfc6376-A.2.eml"))
    assert [r.status for r in results] == ["pass"], results


def test_rfc6376_canonicalization_examples() -> None:
    """RFC 6376 §3.4.6: the example header and body in both canonicalizations."""
    from core.mailauth.canon import BodyHasher, canonical_header, parse_header_section

    head = b"A: X\r\nB : Y\t\r\n\tZ  \r\n"
    fields = parse_header_section(head)
    assert b"".join(canonical_header(f.raw, True) for f in fields) == b"a:X\r\nb:Y Z\r\n"
    assert b"".join(canonical_header(f.raw, False) for f in fields) == head
    body = b" C \r\nD \t E\r\n\r\n\r\n"
    import hashlib
    for relaxed, expect in ((True, b" C\r\nD E\r\n"), (False, b" C \r\nD \t E\r\n")):
        h = BodyHasher(relaxed, "sha256")
        h.update(body)
        assert h.digest() == hashlib.sha256(expect).digest()
