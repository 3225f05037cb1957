"""SASL server side for SMTP AUTH: SCRAM-SHA-256 (RFC 5802/7677) and password checks.

Only SCRAM credentials (salt, iterations, StoredKey, ServerKey) are needed:
PLAIN and LOGIN passwords are verified by deriving StoredKey from the given
password and comparing in constant time, so the store never has to keep a
reversible secret. Channel binding (``-PLUS``) is not implemented and not
advertised, so a client asking for it (``p=``) is refused.

Password normalisation approximates PRECIS OpaqueString (RFC 8265), as mox
uses: non-ASCII spaces become U+0020, then NFC. The same function must be
used when the credentials are derived from a new password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata
from dataclasses import dataclass


class SaslError(Exception):
    """Malformed SASL exchange (the client's fault); message is safe to show."""


class ScramProofError(SaslError):
    """The client proof did not verify: wrong password."""


@dataclass(frozen=True)
class ScramCredentials:
    """SCRAM-SHA-256 secrets for one account (RFC 5802 section 3)."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def normalize_password(password: str) -> str:
    """PRECIS OpaqueString, approximately: map Unicode spaces to ' ', then NFC."""
    mapped = "".join(" " if (c != " " and unicodedata.category(c) == "Zs") else c for c in password)
    return unicodedata.normalize("NFC", mapped)


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def salted_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac(
        "sha256", normalize_password(password).encode("utf-8"), salt, iterations
    )


def derive_scram_sha256(password: str, salt: bytes, iterations: int) -> ScramCredentials:
    """Credentials to store for ``password``. CPU-heavy: call from a worker thread."""
    sp = salted_password(password, salt, iterations)
    client_key = _hmac(sp, b"Client Key")
    return ScramCredentials(
        salt=salt,
        iterations=iterations,
        stored_key=hashlib.sha256(client_key).digest(),
        server_key=_hmac(sp, b"Server Key"),
    )


def verify_password(password: str, creds: ScramCredentials) -> bool:
    """Constant-time check of a plaintext password. CPU-heavy: call from a worker thread."""
    got = derive_scram_sha256(password, creds.salt, creds.iterations)
    return hmac.compare_digest(got.stored_key, creds.stored_key)


_DUMMY = ScramCredentials(b"moxtrio-dummy-salt", 4096, b"\0" * 32, b"\0" * 32)


def verify_password_dummy(password: str) -> bool:
    """Spend about the same time as :func:`verify_password` for unknown users."""
    verify_password(password, _DUMMY)
    return False


def _decode_saslname(s: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(s):
        c = s[i]
        if c == "=":
            esc = s[i + 1 : i + 3]
            if esc == "2C":
                out.append(",")
            elif esc == "3D":
                out.append("=")
            else:
                raise SaslError("invalid escape in username")
            i += 3
            continue
        if c == ",":
            raise SaslError("invalid comma in username")
        out.append(c)
        i += 1
    return "".join(out)


def _b64decode(s: str, what: str) -> bytes:
    try:
        return base64.b64decode(s.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise SaslError(f"invalid base64 in {what}") from None


class ScramServer:
    """Server side of one SCRAM-SHA-256 exchange (no channel binding).

    Usage: ``s = ScramServer(client_first)``; look up ``s.authentication``;
    send ``s.server_first(creds)``; then ``s.finish(client_final, creds)``
    returns the server-final message (``v=...``) or raises
    :class:`ScramProofError` (send ``e=invalid-proof``) / :class:`SaslError`.
    """

    def __init__(self, client_first: bytes) -> None:
        try:
            text = client_first.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslError("client-first message is not utf-8") from None
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise SaslError("malformed client-first message")
        cbind, authz, bare = parts
        if cbind.startswith("p="):
            raise SaslError("channel binding not supported")
        if cbind not in ("n", "y"):
            raise SaslError("malformed gs2 header")
        self.authorization = ""
        if authz:
            if not authz.startswith("a="):
                raise SaslError("malformed authzid")
            self.authorization = unicodedata.normalize("NFC", _decode_saslname(authz[2:]))
        self.gs2_header = f"{cbind},{authz},"
        if bare.startswith("m="):
            raise SaslError("mandatory extensions not supported")
        attrs = bare.split(",")
        if len(attrs) < 2 or not attrs[0].startswith("n=") or not attrs[1].startswith("r="):
            raise SaslError("malformed client-first message")
        self.authentication = unicodedata.normalize("NFC", _decode_saslname(attrs[0][2:]))
        self.client_nonce = attrs[1][2:]
        if not self.client_nonce or any(
            not ("\x21" <= c <= "\x7e") or c == "," for c in self.client_nonce
        ):
            raise SaslError("invalid client nonce")
        self.client_first_bare = bare
        self.nonce = ""
        self._server_first = ""

    def server_first(self, creds: ScramCredentials) -> str:
        self.nonce = self.client_nonce + base64.b64encode(secrets.token_bytes(18)).decode("ascii")
        salt = base64.b64encode(creds.salt).decode("ascii")
        self._server_first = f"r={self.nonce},s={salt},i={creds.iterations}"
        return self._server_first

    def finish(self, client_final: bytes, creds: ScramCredentials) -> str:
        try:
            text = client_final.decode("ascii")
        except UnicodeDecodeError:
            raise SaslError("client-final message is not ascii") from None
        attrs = text.split(",")
        if len(attrs) < 3 or not attrs[0].startswith("c=") or not attrs[1].startswith("r="):
            raise SaslError("malformed client-final message")
        if not attrs[-1].startswith("p="):
            raise SaslError("missing proof in client-final message")
        cbind = _b64decode(attrs[0][2:], "channel binding")
        if cbind != self.gs2_header.encode("utf-8"):
            raise SaslError("channel binding data mismatch")
        if attrs[1][2:] != self.nonce:
            raise SaslError("nonce mismatch")
        proof = _b64decode(attrs[-1][2:], "proof")
        without_proof = text[: text.rindex(",p=")]
        auth_message = f"{self.client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = _hmac(creds.stored_key, auth_message)
        if len(proof) != len(client_signature):
            raise ScramProofError("invalid-proof")
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(hashlib.sha256(client_key).digest(), creds.stored_key):
            raise ScramProofError("invalid-proof")
        server_signature = _hmac(creds.server_key, auth_message)
        return "v=" + base64.b64encode(server_signature).decode("ascii")
