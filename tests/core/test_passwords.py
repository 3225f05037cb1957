"""Derived login secrets: resumable MD5, CRAM-MD5 states, SCRAM-SHA-1 verifiers."""

from __future__ import annotations

import hashlib
import hmac
import os
from pathlib import Path

import pytest

from core import md5state
from core.passwords import (
    SCRAM_SHA1_ITERATIONS,
    InvalidPassword,
    cram_md5_digest,
    derive_cram_md5,
    derive_scram,
    salted_password,
    scram_keys,
)
from core.store import Store
from core.store.accounts import ensure_account, get_login_secrets, server_secret, set_password


@pytest.mark.parametrize("n", [0, 1, 55, 56, 63, 64, 65, 119, 120, 500])
def test_md5_resume_matches_hashlib(n: int) -> None:
    block, data = os.urandom(64), os.urandom(n)
    assert md5state.resume(md5state.state_after_block(block), data) == hashlib.md5(block + data).digest()


@pytest.mark.parametrize("password", ["tanstaaftanstaaf", "ä" * 40, "pass\u00a0word"])
def test_cram_md5_secret_gives_hmac_md5(password: str) -> None:
    # RFC 2195's example for the short one; long keys are hashed first (RFC 2104).
    challenge = b"<1896.697170952@postoffice.reston.mci.net>"
    key = password.replace("\u00a0", " ").encode()
    want = hmac.new(key, challenge, "md5").hexdigest()
    assert cram_md5_digest(derive_cram_md5(password), challenge) == want
    if password == "tanstaaftanstaaf":
        assert want == "b913a602c7eda7a495b4e6e7334d3890"


def test_scram_sha1_verifier_and_empty_password() -> None:
    s = derive_scram("pencil", "sha1", SCRAM_SHA1_ITERATIONS)
    _, stored, server = scram_keys(salted_password("pencil", s.salt, SCRAM_SHA1_ITERATIONS, "sha1"), "sha1")
    assert (stored, server) == (s.stored_key, s.server_key)
    assert len(stored) == 20
    with pytest.raises(InvalidPassword):
        derive_cram_md5("")


async def test_set_password_stores_every_secret(tmp_path: Path) -> None:
    async with await Store.open(tmp_path) as store:
        await store.write(lambda c: ensure_account(c, "mjl"))
        before = await store.read(lambda c: get_login_secrets(c, "mjl"))
        assert before is not None and before.scram_sha256 is None and before.cram_md5 is None
        await store.write(lambda c: set_password(c, "mjl", "test1234"))
        after = await store.read(lambda c: get_login_secrets(c, "mjl"))
        assert after is not None and after.scram_sha256 and after.scram_sha1 and after.cram_md5
        assert cram_md5_digest(after.cram_md5, b"<x@y>") == hmac.new(b"test1234", b"<x@y>", "md5").hexdigest()
        assert await store.read(lambda c: get_login_secrets(c, "nobody")) is None
        key = await store.write(lambda c: server_secret(c, "k"))
    async with await Store.open(tmp_path) as store:
        assert await store.write(lambda c: server_secret(c, "k")) == key  # Kept across restarts.
