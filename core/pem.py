"""PEM files as mox writes them: keys with a ``Note:`` header line.

mox's PEM key files (TLS and DKIM) carry a ``Note:`` header line that
Python's ``ssl`` module rejects; :func:`load_pem_private_key_with_note` and
:func:`server_ssl_context` load them through ``cryptography`` and hand
``ssl`` a clean temporary copy. :func:`pem_with_note` writes such a header,
as Go's ``pem.Encode`` does.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def pem_with_note(pem: bytes, note: str) -> bytes:
    """Insert a ``Note:`` PEM header after the BEGIN line, as Go's pem.Encode does."""
    lines = pem.decode("ascii").splitlines(keepends=True)
    return (lines[0] + f"Note: {note}\n\n" + "".join(lines[1:])).encode("ascii")


def strip_pem_headers(pem: bytes) -> bytes:
    """Remove RFC 1421 style header lines (``Name: value`` and the blank line) from PEM."""
    out: list[str] = []
    in_block = False
    in_headers = False
    for line in pem.decode("ascii").splitlines():
        if line.startswith("-----BEGIN "):
            in_block = in_headers = True
            out.append(line)
            continue
        if line.startswith("-----END "):
            in_block = in_headers = False
            out.append(line)
            continue
        if in_block and in_headers:
            if ":" in line:
                continue
            if line.strip() == "":
                in_headers = False
                continue
            in_headers = False
        if in_block and line.strip() == "":
            continue
        out.append(line)
    return ("\n".join(out) + "\n").encode("ascii")


def load_pem_private_key_with_note(path: str | Path) -> PrivateKeyTypes:
    """Load a PEM private key that may carry mox's ``Note:`` header."""
    from cryptography.hazmat.primitives import serialization

    data = Path(path).read_bytes()
    return serialization.load_pem_private_key(strip_pem_headers(data), password=None)


class _EncryptedKey(Exception):
    """ssl asked for a password: the key is encrypted (we never give one)."""


def _no_password() -> bytes:
    raise _EncryptedKey


def server_ssl_context(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    """Server-side SSLContext from a cert file and a (possibly mox-style) key file.

    ``ssl`` only loads keys from files, so a copy without the ``Note:``
    header is written to a private temporary directory (mode 0700/0600) and
    removed right after. A key OpenSSL does not take that way (or an
    encrypted one, which would make it ask for a password on the terminal)
    goes through ``cryptography`` as a clean PKCS#8 copy instead, whose
    errors are the ones reported; ``cryptography`` is not imported otherwise
    (it is megabytes a server does not need until it signs).
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="moxtrio-key-") as tmp:
        kp = Path(tmp) / "key.pem"
        _write_private(kp, strip_pem_headers(Path(key_file).read_bytes()))
        try:
            ctx.load_cert_chain(str(cert_file), str(kp), password=_no_password)
            return ctx
        except (ssl.SSLError, _EncryptedKey):
            pass
    return _server_ssl_context_pkcs8(cert_file, key_file)


def _server_ssl_context_pkcs8(cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
    from cryptography.hazmat.primitives import serialization

    key = load_pem_private_key_with_note(key_file)
    clean = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory(prefix="moxtrio-key-") as tmp:
        kp = Path(tmp) / "key.pem"
        _write_private(kp, clean)
        ctx.load_cert_chain(str(cert_file), str(kp))
    return ctx


def _write_private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
