"""SASL server side for SMTP AUTH: SCRAM-SHA-256/SHA-1 (-PLUS) and CRAM-MD5.

The SCRAM verifiers (salt, iterations, StoredKey, ServerKey) and the CRAM-MD5
MD5 states come from :mod:`core.passwords`; PLAIN and LOGIN passwords are
checked against the SCRAM-SHA-256 verifier. Nothing reversible is stored.

Channel binding (the ``-PLUS`` mechanisms, RFC 5802 and RFC 9266) uses the
data :mod:`core.tlsbinding` can give for the connection: ``tls-exporter``
(TLS 1.3), ``tls-unique`` (TLS 1.2) and ``tls-server-end-point``.

A SCRAM exchange for an unknown user goes on with decoy credentials: a salt
derived from the user name under a server secret and a fixed iteration
count, so the exchange looks the same as for a real account until the proof
fails, and user names cannot be enumerated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import unicodedata
from collections.abc import Callable

from core.passwords import SALT_LEN, SCRAM_SHA1_ITERATIONS, SCRAM_SHA256_ITERATIONS
from core.store.models import ScramCredentials

#: SASL mechanism -> (hash, channel binding required).
SCRAM_MECHANISMS: dict[str, tuple[str, bool]] = {
    "SCRAM-SHA-256-PLUS": ("sha256", True),
    "SCRAM-SHA-256": ("sha256", False),
    "SCRAM-SHA-1-PLUS": ("sha1", True),
    "SCRAM-SHA-1": ("sha1", False),
}


class SaslError(Exception):
    """Malformed SASL exchange (the client's fault); message is safe to show."""


class ScramProofError(SaslError):
    """The client proof did not verify: wrong password."""


class ScramChannelBindingError(SaslError):
    """The channel binding did not match (possible man in the middle) or is unusable."""


def decoy_credentials(key: bytes, hash_name: str, username: str) -> ScramCredentials:
    """Credentials for an unknown user: a stable salt derived from the name (so
    repeated attempts see the same salt, as for a real account), the iteration
    count real accounts get, and keys no proof can match."""
    salt = hmac.digest(key, f"scram-{hash_name}\0{username}".encode(), "sha256")[:SALT_LEN]
    iterations = SCRAM_SHA1_ITERATIONS if hash_name == "sha1" else SCRAM_SHA256_ITERATIONS
    size = hashlib.new(hash_name).digest_size
    return ScramCredentials(salt, iterations, secrets.token_bytes(size), secrets.token_bytes(size))


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
    """Server side of one SCRAM-SHA-* exchange (RFC 5802), optionally with channel binding.

    ``binding(name)`` returns the connection's channel binding data of that
    type or raises :class:`ScramChannelBindingError`; it is None without TLS.
    ``binding_offered``: the -PLUS mechanisms were advertised, so a client
    that says it supports binding but thinks we don't (``y``) is refused as
    a downgrade. ``plus``: the client chose a -PLUS mechanism and must bind.

    Usage: ``s = ScramServer(client_first, ...)``; look up ``s.authentication``;
    send ``s.server_first(creds)``; then ``s.finish(client_final, creds)``
    returns the server-final message (``v=...``) or raises
    :class:`ScramProofError` / :class:`ScramChannelBindingError` / :class:`SaslError`.
    """

    def __init__(
        self,
        client_first: bytes,
        hash_name: str = "sha256",
        *,
        plus: bool = False,
        binding: Callable[[str], bytes] | None = None,
        binding_offered: bool = False,
    ) -> None:
        self.hash_name = hash_name
        try:
            text = client_first.decode("utf-8")
        except UnicodeDecodeError:
            raise SaslError("client-first message is not utf-8") from None
        parts = text.split(",", 2)
        if len(parts) != 3:
            raise SaslError("malformed client-first message")
        cbind, authz, bare = parts
        self.channel_binding = b""
        if cbind.startswith("p="):
            if binding is None:
                raise ScramChannelBindingError("channel binding not supported without tls")
            self.channel_binding = binding(cbind[2:])
        elif cbind == "n":
            if plus:
                raise ScramChannelBindingError("channel binding is required when specifying scram plus")
        elif cbind == "y":
            if binding_offered:
                raise ScramChannelBindingError(
                    "gs2 channel bind flag is y, client believes server does not support channel binding"
                )
        else:
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

    def _hmac(self, key: bytes, msg: bytes) -> bytes:
        return hmac.digest(key, msg, self.hash_name)

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
        if not hmac.compare_digest(cbind, self.gs2_header.encode("utf-8") + self.channel_binding):
            raise ScramChannelBindingError("channel-bindings-dont-match")
        if attrs[1][2:] != self.nonce:
            raise SaslError("nonce mismatch")
        proof = _b64decode(attrs[-1][2:], "proof")
        without_proof = text[: text.rindex(",p=")]
        auth_message = f"{self.client_first_bare},{self._server_first},{without_proof}".encode()
        client_signature = self._hmac(creds.stored_key, auth_message)
        if len(proof) != len(client_signature):
            raise ScramProofError("invalid-proof")
        client_key = bytes(a ^ b for a, b in zip(proof, client_signature, strict=True))
        if not hmac.compare_digest(hashlib.new(self.hash_name, client_key).digest(), creds.stored_key):
            raise ScramProofError("invalid-proof")
        server_signature = self._hmac(creds.server_key, auth_message)
        return "v=" + base64.b64encode(server_signature).decode("ascii")
