"""Secrets derived from an account password, as mox derives them.

No password is stored. Setting one derives, for every SASL mechanism mox
offers:

- SCRAM-SHA-256: salt, 4096 iterations, StoredKey and ServerKey (RFC 5802/7677);
  PLAIN, LOGIN and HTTP Basic passwords are checked against these too;
- SCRAM-SHA-1: salt, 8192 iterations (mox: 2 * 4096), StoredKey and ServerKey;
- CRAM-MD5: the MD5 states after HMAC's inner and outer key block (RFC 2104),
  so a login finishes the HMAC over the challenge without the password.

mox keeps the SCRAM SaltedPassword itself; StoredKey/ServerKey are what RFC
5802 asks a server to keep and are enough to verify a proof. Passwords are
prepared like PRECIS OpaqueString (RFC 8265), as mox does: non-ASCII spaces
become U+0020, then NFC; an empty result is refused.

Key derivation is CPU-heavy (PBKDF2): call these from a worker thread.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata

from core import md5state
from core.store.models import CramMD5Secret, ScramCredentials

SCRAM_SHA256_ITERATIONS = 4096
SCRAM_SHA1_ITERATIONS = 2 * 4096
SALT_LEN = 16


class InvalidPassword(ValueError):
    """The password cannot be used (empty after normalization)."""


def normalize_password(password: str) -> str:
    """PRECIS OpaqueString-style preparation, as mox does before hashing.

    Non-ASCII spaces become U+0020 and the result is NFC-normalized, so the
    same password typed on different systems gives the same key.
    """
    mapped = "".join(" " if unicodedata.category(c) == "Zs" else c for c in password)
    prepared = unicodedata.normalize("NFC", mapped)
    if not prepared:
        raise InvalidPassword("empty password")
    return prepared


def salted_password(password: str, salt: bytes, iterations: int, hash_name: str = "sha256") -> bytes:
    """SaltedPassword := Hi(Normalize(password), salt, i) (RFC 5802 §3)."""
    return hashlib.pbkdf2_hmac(hash_name, normalize_password(password).encode(), salt, iterations)


def scram_keys(salted: bytes, hash_name: str = "sha256") -> tuple[bytes, bytes, bytes]:
    """(ClientKey, StoredKey, ServerKey) for a SaltedPassword."""
    client_key = hmac.digest(salted, b"Client Key", hash_name)
    stored_key = hashlib.new(hash_name, client_key).digest()
    server_key = hmac.digest(salted, b"Server Key", hash_name)
    return client_key, stored_key, server_key


def derive_scram(
    password: str, hash_name: str, iterations: int, salt: bytes | None = None
) -> ScramCredentials:
    """SCRAM verifier for ``password`` (fresh random salt unless given)."""
    salt = secrets.token_bytes(SALT_LEN) if salt is None else salt
    _, stored_key, server_key = scram_keys(salted_password(password, salt, iterations, hash_name), hash_name)
    return ScramCredentials(salt=salt, iterations=iterations, stored_key=stored_key, server_key=server_key)


def derive_cram_md5(password: str) -> CramMD5Secret:
    """MD5 states after HMAC-MD5's inner and outer key blocks (mox's stored form)."""
    key = normalize_password(password).encode()
    if len(key) > md5state.BLOCK:
        key = hashlib.md5(key).digest()
    key = key.ljust(md5state.BLOCK, b"\0")
    ipad = bytes(b ^ 0x36 for b in key)
    opad = bytes(b ^ 0x5C for b in key)
    return CramMD5Secret(ipad=md5state.state_after_block(ipad), opad=md5state.state_after_block(opad))


def cram_md5_digest(secret: CramMD5Secret, challenge: bytes) -> str:
    """The hex HMAC-MD5 a client with the right password answers to ``challenge``."""
    inner = md5state.resume(secret.ipad, challenge)
    return md5state.resume(secret.opad, inner).hex()


def verify_password(password: str, creds: ScramCredentials) -> bool:
    """Constant-time check of a plaintext password against a SCRAM-SHA-256 verifier."""
    try:
        salted = salted_password(password, creds.salt, creds.iterations)
    except InvalidPassword:
        return False
    _, stored_key, _ = scram_keys(salted)
    return hmac.compare_digest(stored_key, creds.stored_key)


_DUMMY = ScramCredentials(b"\0" * SALT_LEN, SCRAM_SHA256_ITERATIONS, b"\0" * 32, b"\0" * 32)


def verify_password_dummy(password: str) -> bool:
    """Spend the time of :func:`verify_password` for an unknown user; always False."""
    verify_password(password or "x", _DUMMY)
    return False
