"""core.dkim signatures checked by an independent verifier (dkimpy): algorithms,
canonicalizations, header sealing, tags, folding, file streaming, config and key cache."""

from __future__ import annotations

import base64
import hashlib
import os
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.config import load_config
from core.dkim import (
    KEYS,
    DKIMError,
    SelectorConfig,
    selectors_from_config,
    sign,
    sign_file,
)
from core.mailauth.canon import BodyHasher
from tests.dkim.helpers import (
    Verifier,
    ed_key,
    rsa_key,
    signature_headers,
    tags,
    txt_from_file,
    txt_record,
    write_mox_key,
)
from tests.support.paths import CONFIGS

MSG = (
    b"From: Mox <mox@example.org>\r\n"
    b"To:  you@x.example,\r\n\tother@x.example\r\n"
    b"Subject:   hello    there  \r\n"
    b"Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    b"Message-Id: <abc@example.org>\r\n"
    b"X-Unsigned: whatever\r\n"
    b"\r\n"
    b"body  line \t\r\n"
    b"\r\n"
    b"second \xe2\x98\xba line\r\n"
    b"\r\n\r\n"
)


def now() -> datetime:
    return datetime.now(UTC)


def ed_selector(**kw: object) -> SelectorConfig:
    return SelectorConfig("ed", ED, **kw)  # type: ignore[arg-type]


def rsa_selector(**kw: object) -> SelectorConfig:
    return SelectorConfig("rsa", rsa_key(), **kw)  # type: ignore[arg-type]


ED = ed_key()


def verifier() -> Verifier:
    return Verifier({"ed._domainkey.example.org": txt_record(ED), "rsa._domainkey.example.org": txt_record(rsa_key())})


@pytest.mark.parametrize("header_relaxed", [True, False])
@pytest.mark.parametrize("body_relaxed", [True, False])
def test_rsa_and_ed25519_verify_for_each_canonicalization(header_relaxed: bool, body_relaxed: bool) -> None:
    sels = [ed_selector(header_relaxed=header_relaxed, body_relaxed=body_relaxed),
            rsa_selector(header_relaxed=header_relaxed, body_relaxed=body_relaxed)]
    headers = sign(MSG, domain="example.org", selectors=sels, localpart_for_i="mox", now=now())
    signed = headers + MSG
    assert verifier().results(signed) == [True, True]
    first, second = (tags(h) for h in signature_headers(signed))
    # One header per selector, in Sign order.
    assert (first["s"], first["a"], second["s"], second["a"]) == ("ed", "ed25519-sha256", "rsa", "rsa-sha256")
    canon = ("relaxed" if header_relaxed else "simple") + "/" + ("relaxed" if body_relaxed else "simple")
    # mox leaves c= out for the default simple/simple.
    assert first.get("c") == (None if canon == "simple/simple" else canon)
    assert first["d"] == "example.org" and first["i"] == "mox@example.org" and first["v"] == "1"


def test_tampering_is_detected() -> None:
    headers = sign(MSG, domain="example.org", selectors=[ed_selector(), rsa_selector()],
                   localpart_for_i="mox", now=now())
    assert verifier().results(headers + MSG.replace(b"second", b"Second")) == [False, False]
    assert verifier().results(headers + MSG.replace(b"hello", b"jello")) == [False, False]


def test_relaxed_tolerates_whitespace_and_refolding_simple_does_not() -> None:
    relaxed = sign(MSG, domain="example.org", selectors=[ed_selector()], localpart_for_i="mox", now=now())
    simple = sign(MSG, domain="example.org", selectors=[ed_selector(header_relaxed=False, body_relaxed=False)],
                  localpart_for_i="mox", now=now())
    body_ws = MSG.replace(b"body  line \t\r\n", b"body line\r\n")
    refolded = MSG.replace(b"To:  you@x.example,\r\n\tother@x.example", b"To: you@x.example, other@x.example")
    for changed in (body_ws, refolded):
        assert verifier().results(relaxed + changed) == [True]
        assert verifier().results(simple + changed) == [False]


def test_sealing_lists_present_headers_once_more_and_blocks_added_instances() -> None:
    sealed = sign(MSG, domain="example.org", selectors=[ed_selector()], localpart_for_i="mox", now=now())
    h = tags(signature_headers(sealed + MSG)[0])["h"].split(":")
    present = {"From", "To", "Subject", "Date", "Message-Id"}
    for name in ("From", "To", "Cc", "Bcc", "Reply-To", "References", "In-Reply-To", "Subject", "Date",
                 "Message-Id", "Content-Type"):
        assert h.count(name) == (2 if name in present else 1), name
    added = b"Subject: injected\r\n"
    assert verifier().results(sealed + added + MSG) == [False]

    unsealed = sign(MSG, domain="example.org", selectors=[ed_selector(seal_headers=False)],
                    localpart_for_i="mox", now=now())
    assert tags(signature_headers(unsealed + MSG)[0])["h"].split(":") == list(SelectorConfig.headers)
    # Without sealing, an extra (earlier) Subject is not covered: it still verifies.
    assert verifier().results(unsealed + added + MSG) == [True]


def test_custom_headers_and_repeated_headers_are_signed_bottom_up() -> None:
    msg = b"Received: a\r\nFrom: mox@example.org\r\nReceived: b\r\nX-Custom: 1\r\n\r\nx\r\n"
    headers = sign(msg, domain="example.org", selectors=[rsa_selector(headers=("From", "Received", "X-Custom"))],
                   localpart_for_i="mox", now=now())
    h = tags(signature_headers(headers + msg)[0])["h"]
    assert h == "From:Received:X-Custom:From:Received:Received:X-Custom"
    assert verifier().results(headers + msg) == [True]
    assert verifier().results(headers + msg.replace(b"Received: a", b"Received: z")) == [False]


def test_times_expiration_and_identity() -> None:
    when = now()
    headers = sign(MSG, domain="Example.ORG", selectors=[ed_selector(expiration_seconds=72 * 3600)],
                   localpart_for_i="mox+tag", now=when)
    t = tags(signature_headers(headers + MSG)[0])
    assert int(t["t"]) == int(when.timestamp())
    assert int(t["x"]) == int(t["t"]) + 259200
    assert t["i"] == "mox+tag@example.org" and t["d"] == "example.org"
    no_i = sign(MSG, domain="example.org", selectors=[ed_selector()], localpart_for_i=None, now=when)
    assert "i" not in tags(signature_headers(no_i + MSG)[0])
    assert "x" not in tags(signature_headers(no_i + MSG)[0])
    quoted = sign(MSG, domain="example.org", selectors=[ed_selector()], localpart_for_i="a b", now=when)
    assert tags(signature_headers(quoted + MSG)[0])["i"] == "@example.org"  # never breaks the tag list
    assert verifier().results(quoted + MSG) == [True]


def test_folding_like_mox() -> None:
    headers = sign(MSG, domain="example.org", selectors=[rsa_selector(), ed_selector()],
                   localpart_for_i="mox", now=now())
    text = headers.decode("ascii")
    assert text.endswith("\r\n") and text.count("DKIM-Signature: v=1; d=example.org; s=") == 2
    lines = text.split("\r\n")[:-1]
    assert all(len(line) <= 78 for line in lines)
    assert all(line.startswith(("DKIM-Signature:", "\t")) for line in lines)
    # The b= value (344 base64 chars for RSA-2048) is wrapped anywhere.
    assert len(tags(signature_headers(headers + MSG)[0])["b"]) == 344


def test_sha1_rsa_and_ed25519_requires_sha256() -> None:
    headers = sign(MSG, domain="example.org", selectors=[rsa_selector(hash="sha1")], localpart_for_i="mox", now=now())
    assert tags(signature_headers(headers + MSG)[0])["a"] == "rsa-sha1"
    assert verifier().results(headers + MSG) == [True]
    with pytest.raises(DKIMError, match="requires sha256"):
        sign(MSG, domain="example.org", selectors=[ed_selector(hash="sha1")], localpart_for_i="mox", now=now())


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"To: x@example.org\r\n\r\nbody\r\n", "0 from headers"),
        (b"From: a@example.org\r\nFrom: b@example.org\r\n\r\nbody\r\n", "2 from headers"),
        (b" From: a@example.org\r\n\r\nbody\r\n", "starts with whitespace"),
        (b"From: a@example.org\r\nno colon here\r\n\r\nbody\r\n", "without field name"),
    ],
)
def test_bad_messages_are_refused(message: bytes, error: str) -> None:
    with pytest.raises(DKIMError, match=error):
        sign(message, domain="example.org", selectors=[ed_selector()], localpart_for_i="mox", now=now())


@pytest.mark.parametrize(
    ("body_relaxed", "body", "expected"),
    [
        (False, b"", b"\r\n"),
        (False, b"\r\n\r\n", b"\r\n"),
        (True, b"", b""),
        (True, b" \t\r\n\r\n", b""),
        (False, b"a \r\n\r\nb\r\n\r\n", b"a \r\n\r\nb\r\n"),
        (True, b"a \t b \r\n\r\nc", b"a b\r\n\r\nc\r\n"),
    ],
)
def test_body_hash_of_edge_bodies(body_relaxed: bool, body: bytes, expected: bytes) -> None:
    msg = b"From: mox@example.org\r\n\r\n" + body
    headers = sign(msg, domain="example.org", selectors=[ed_selector(body_relaxed=body_relaxed)],
                   localpart_for_i="mox", now=now())
    bh = tags(signature_headers(headers + msg)[0])["bh"]
    assert bh == base64.b64encode(hashlib.sha256(expected).digest()).decode()
    assert verifier().results(headers + msg) == [True]


def test_headers_only_message_signs_with_empty_body() -> None:
    msg = b"From: mox@example.org\r\nSubject: x\r\n"
    headers = sign(msg, domain="example.org", selectors=[ed_selector(body_relaxed=False)],
                   localpart_for_i="mox", now=now())
    assert tags(signature_headers(headers + msg + b"\r\n")[0])["bh"] == base64.b64encode(
        hashlib.sha256(b"\r\n").digest()).decode()


@settings(max_examples=150, deadline=None)
@given(
    body=st.lists(st.sampled_from([b"a", b"b c", b" ", b"\t", b"\r\n", b"\r\n\r\n", b"  x  "]), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=6),
    relaxed=st.booleans(),
)
def test_chunked_body_hash_equals_one_shot(body: list[bytes], cuts: list[int], relaxed: bool) -> None:
    data = b"".join(body)
    one = BodyHasher(relaxed, "sha256")
    one.update(data)
    chunked = BodyHasher(relaxed, "sha256")
    prev = 0
    for cut in sorted(c for c in cuts if c <= len(data)):
        chunked.update(data[prev:cut])
        prev = cut
    chunked.update(data[prev:])
    assert chunked.digest() == one.digest()


def test_sign_file_with_prefix_equals_sign_of_the_whole(tmp_path: Path) -> None:
    # Large body crossing many read chunks, lines with trailing whitespace, and
    # Message-Id/Date living in the prefix as in SMTP submission.
    prefix = b"Message-Id: <p@example.org>\r\nDate: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
    rest = b"From: mox@example.org\r\nSubject: big\r\n\r\n" + b"0123456789 abc \t\r\n" * 60000 + b"\r\n\r\n"
    path = tmp_path / "msg"
    path.write_bytes(rest)
    when = now()
    sels = [ed_selector(), rsa_selector(header_relaxed=False, body_relaxed=False)]
    from_file = sign_file(path, prefix=prefix, domain="example.org", selectors=sels, localpart_for_i="mox", now=when)
    whole = sign(prefix + rest, domain="example.org", selectors=sels, localpart_for_i="mox", now=when)
    assert from_file == whole  # both signature schemes are deterministic
    assert verifier().results(from_file + prefix + rest) == [True, True]
    h = tags(signature_headers(from_file + prefix + rest)[0])["h"].split(":")
    assert h.count("Message-Id") == 2 and h.count("Date") == 2  # prefix headers are signed


def test_rsa_selector_from_a_mox_config() -> None:
    config = load_config(CONFIGS / "webapi" / "mox.conf")
    dom = config.domain("app.example")
    assert dom is not None
    [sel] = selectors_from_config(config, dom)
    assert sel.selector == "mail2026" and sel.algorithm == "rsa-sha256"
    # No Canonicalization in the config: mox signs simple/simple then.
    assert sel.canonicalization == "simple/simple" and sel.seal_headers and sel.expiration_seconds == 0
    msg = b"From: ann@app.example\r\nSubject: s\r\n\r\nhi\r\n"
    headers = sign(msg, domain="app.example", selectors=[sel], localpart_for_i="ann", now=now())
    record = txt_from_file(CONFIGS / "webapi" / "mail2026.rsakey.pkcs8.pem")
    assert Verifier({"mail2026._domainkey.app.example": record}).results(headers + msg) == [True]


def test_localserve_style_config_with_ed25519_note_key(tmp_path: Path) -> None:
    from tests.support.inproc import localserve_config_dir

    directory, _ = localserve_config_dir(tmp_path)
    config = load_config(directory / "mox.conf")
    dom = config.domain("localhost")
    assert dom is not None
    [sel] = selectors_from_config(config, dom)
    assert sel.selector == "localserve" and sel.algorithm == "ed25519-sha256"
    assert sel.expiration_seconds == 72 * 3600
    msg = b"From: mox@localhost\r\nTo: mox@localhost\r\n\r\nhi\r\n"
    headers = sign(msg, domain="localhost", selectors=[sel], localpart_for_i="mox", now=now())
    record = txt_from_file(directory / "dkim.localserve.privatekey.pkcs8.pem")
    assert Verifier({"localserve._domainkey.localhost": record}).results(headers + msg) == [True]


def test_key_cache_reuses_until_the_file_changes(tmp_path: Path) -> None:
    path = write_mox_key(tmp_path / "k.pem", ed_key())
    first = KEYS.load(path)
    assert KEYS.load(path) is first and KEYS.cached(path) is first
    write_mox_key(path, ed_key())
    st_ = path.stat()
    os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    assert KEYS.cached(path) is None
    second = KEYS.load(path)
    assert second is not first
    assert txt_record(second) == txt_from_file(path)


def test_bad_key_files_give_dkim_errors(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    with pytest.raises(DKIMError, match="loading dkim private key"):
        KEYS.load(tmp_path / "missing.pem")
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(DKIMError, match="loading dkim private key"):
        KEYS.load(garbage)
    ec_path = write_mox_key(tmp_path / "ec.pem", ec.generate_private_key(ec.SECP256R1()))  # type: ignore[arg-type]
    with pytest.raises(DKIMError, match="unsupported key type"):
        KEYS.load(ec_path)
    assert re.search(r"Note: ", ec_path.read_text())


@settings(max_examples=300, deadline=None)
@given(
    body=st.lists(st.sampled_from([b"a", b"b c", b" ", b"\t", b"  ", b"\r\n", b"\r\n\r\n", b" \t x \t"]), max_size=30),
    relaxed=st.booleans(),
)
def test_body_canonicalization_matches_dkimpy(body: list[bytes], relaxed: bool) -> None:
    from dkim.canonicalization import Relaxed, Simple

    data = b"".join(body)
    ours = BodyHasher(relaxed, "sha256")
    ours.update(data)
    reference = (Relaxed if relaxed else Simple).canonicalize_body(data)
    assert ours.digest() == hashlib.sha256(reference).digest(), (data, reference)


def test_sign_for_domain_reuses_selectors_until_the_key_file_or_header_names_change(tmp_path: Path) -> None:
    """Resolved selectors are kept between signings, but a replaced key file, other
    extra header names or a reloaded config are seen on the very next message."""
    import trio

    from core.dkim import sign_for_domain
    from tests.support.inproc import localserve_config_dir

    directory, _ = localserve_config_dir(tmp_path)
    key_path = directory / "dkim.localserve.privatekey.pkcs8.pem"

    class Ctx:
        config = load_config(directory / "mox.conf")

    msg = b"From: mox@localhost\r\nTo: mox@localhost\r\nX-Hook: 1\r\n\r\nhi\r\n"

    def verify(headers: bytes) -> list[bool]:
        return Verifier({"localserve._domainkey.localhost": txt_from_file(key_path)}).results(headers + msg)

    async def signed(**kw: object) -> bytes:
        return await sign_for_domain(Ctx, msg, "mox@localhost", strict=True, **kw)  # type: ignore[arg-type]

    first = trio.run(signed)
    assert verify(first) == [True] and b"X-Hook" not in first
    assert b"X-Hook" in trio.run(lambda: signed(also_sign=("X-Hook",)))
    assert b"X-Hook" not in trio.run(signed)

    write_mox_key(key_path, ed_key())
    st_ = key_path.stat()
    os.utime(key_path, ns=(st_.st_atime_ns, st_.st_mtime_ns + 1_000_000_000))
    assert verify(trio.run(signed)) == [True]  # signed with the new key

    domains = directory / "domains.conf"
    text = domains.read_text()
    assert "Expiration: 72h" in text
    domains.write_text(text.replace("Expiration: 72h", "Expiration: 1h"))
    Ctx.config = load_config(directory / "mox.conf")
    reloaded = tags(trio.run(signed).decode())
    assert int(reloaded["x"]) - int(reloaded["t"]) == 3600
    assert int(tags(first.decode())["x"]) - int(tags(first.decode())["t"]) == 72 * 3600
