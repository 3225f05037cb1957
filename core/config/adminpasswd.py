"""Admin password hashes for ``AdminPasswordFile``.

mox stores a bcrypt hash. bcrypt is not among our dependencies, so files we
write hold a PBKDF2-SHA256 hash in the common modular format
``$pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`` (stdlib hashlib only).
Verification accepts that format; a bcrypt hash written by mox itself
(``$2a$``/``$2b$``/``$2y$``) can't be checked without bcrypt and is reported
as such, so the operator knows to re-set the password with moxtrio.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

PBKDF2_ITERATIONS = 200_000
_PREFIX = "$pbkdf2-sha256$"


class UnsupportedHashError(ValueError):
    """The stored hash uses a scheme we cannot verify (e.g. mox's bcrypt)."""


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode("ascii").rstrip("=")


def _unb64(s: str) -> bytes:
    return base64.b64decode(s + "=" * (-len(s) % 4))


def hash_password(password: str, iterations: int = PBKDF2_ITERATIONS) -> str:
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return f"{_PREFIX}{iterations}${_b64(salt)}${_b64(dk)}"


def verify_password(password: str, stored: str) -> bool:
    """Check ``password`` against a stored hash (file content, whitespace ignored)."""
    stored = stored.strip()
    if stored.startswith(("$2a$", "$2b$", "$2y$")):
        raise UnsupportedHashError("bcrypt admin password hash (from mox) cannot be verified; set a new admin password")
    if not stored.startswith(_PREFIX):
        raise UnsupportedHashError("unknown admin password hash format")
    try:
        iters_s, salt_s, dk_s = stored[len(_PREFIX) :].split("$")
        iterations = int(iters_s)
        salt, expected = _unb64(salt_s), _unb64(dk_s)
    except ValueError as e:
        raise UnsupportedHashError(f"malformed admin password hash: {e}") from e
    dk = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return hmac.compare_digest(dk, expected)
