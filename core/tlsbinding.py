"""TLS channel binding data for SCRAM-*-PLUS (RFC 5929, RFC 9266).

What is supported, and how:

- ``tls-exporter`` (RFC 9266, TLS 1.3 only, as mox): 32 bytes of keying
  material with label ``EXPORTER-Channel-Binding`` and no context. Python's
  ``ssl`` module does not expose the TLS exporter, so it is read through
  OpenSSL's ``SSL_export_keying_material`` on the connection's ``SSL*``,
  which ``ssl`` keeps right after the object header and one pointer in its
  ``_ssl._SSLSocket`` (true for CPython 3.x). Before trusting the pointer,
  the handshake's Finished message read through it must equal what
  ``ssl`` itself reports; if anything differs, or this is not CPython,
  ``tls-exporter`` is unavailable (and so is ``tls-server-end-point``).
- ``tls-unique`` (RFC 5929, TLS 1.2 only; undefined for TLS 1.3): from
  ``ssl``'s own ``get_channel_binding``.
- ``tls-server-end-point`` (RFC 5929, any TLS version): a hash of our
  certificate (SHA-256 unless the certificate's signature uses a stronger
  hash), the certificate read through the same ``SSL*``.

When none is available the -PLUS mechanisms are not advertised.
"""

from __future__ import annotations

import ctypes
import logging
import ssl
import sys
from typing import Any

log = logging.getLogger("moxtrio.tls")

EXPORTER_LABEL = b"EXPORTER-Channel-Binding"
NAMES = ("tls-exporter", "tls-unique", "tls-server-end-point")


class ChannelBindingUnavailable(Exception):
    """This connection cannot give data for the requested binding type."""


def _load_libssl() -> Any:
    if sys.implementation.name != "cpython":
        return None
    try:
        import _ssl

        lib = ctypes.CDLL(_ssl.__file__)
        lib.SSL_export_keying_material.argtypes = [
            ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t,
            ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
        ]
        lib.SSL_export_keying_material.restype = ctypes.c_int
        for fn in (lib.SSL_get_finished, lib.SSL_get_peer_finished):
            fn.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_size_t]
            fn.restype = ctypes.c_size_t
        lib.SSL_get_certificate.argtypes = [ctypes.c_void_p]
        lib.SSL_get_certificate.restype = ctypes.c_void_p
        lib.i2d_X509.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_char_p)]
        lib.i2d_X509.restype = ctypes.c_int
        return lib
    except (ImportError, OSError, AttributeError) as exc:
        log.info("tls channel binding through openssl unavailable: %s", exc)
        return None


_LIB = _load_libssl()
_PTR_OFFSET = object.__basicsize__ + ctypes.sizeof(ctypes.c_void_p)


def _ssl_pointer(obj: ssl.SSLObject) -> int | None:
    """The connection's ``SSL*``, checked against ``ssl``'s own view of the handshake."""
    if _LIB is None:
        return None
    inner = getattr(obj, "_sslobj", None)
    if inner is None or type(inner).__name__ != "_SSLSocket":
        return None
    ptr = ctypes.c_void_p.from_address(id(inner) + _PTR_OFFSET).value
    if not ptr:
        return None
    expected = obj.get_channel_binding("tls-unique")
    if not expected:
        return None
    buf = ctypes.create_string_buffer(128)
    # ssl reports the peer's Finished for a server on a fresh session and for a
    # client on a resumed one, its own otherwise.
    peer = obj.server_side != bool(obj.session_reused)
    fn = _LIB.SSL_get_peer_finished if peer else _LIB.SSL_get_finished
    n = fn(ptr, buf, len(buf))
    if buf.raw[:n] != expected:
        log.warning("tls channel binding: ssl object layout not as expected, disabled")
        return None
    return int(ptr)


def _server_end_point(ptr: int) -> bytes:
    # Here: only SCRAM-*-PLUS with tls-server-end-point needs cryptography.
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    assert _LIB is not None
    cert = _LIB.SSL_get_certificate(ptr)
    if not cert:
        raise ChannelBindingUnavailable("no local certificate")
    n = _LIB.i2d_X509(cert, None)
    if n <= 0:
        raise ChannelBindingUnavailable("cannot encode certificate")
    buf = ctypes.create_string_buffer(n)
    out = ctypes.c_char_p(ctypes.addressof(buf))  # type: ignore[arg-type]
    if _LIB.i2d_X509(cert, ctypes.byref(out)) != n:
        raise ChannelBindingUnavailable("cannot encode certificate")
    der = buf.raw[:n]
    algo = x509.load_der_x509_certificate(der).signature_hash_algorithm
    if algo is None or isinstance(algo, hashes.MD5 | hashes.SHA1):
        algo = hashes.SHA256()
    h = hashes.Hash(algo)
    h.update(der)
    return h.finalize()


def available(obj: ssl.SSLObject | None) -> bool:
    """Whether this connection can bind at all (then -PLUS is advertised)."""
    return obj is not None and _ssl_pointer(obj) is not None


def channel_binding(obj: ssl.SSLObject, name: str) -> bytes:
    """The channel binding data of ``name`` for this connection, or raise
    :class:`ChannelBindingUnavailable` (unknown type, wrong TLS version)."""
    version = obj.version() or ""
    if name == "tls-unique":
        if version == "TLSv1.3":
            raise ChannelBindingUnavailable("tls-unique not defined for tls 1.3 and later, use tls-exporter")
        data = obj.get_channel_binding("tls-unique")
        if not data:
            raise ChannelBindingUnavailable("no tls-unique data for this connection")
        return data
    if name not in NAMES:
        raise ChannelBindingUnavailable(f"unknown channel binding type {name}")
    ptr = _ssl_pointer(obj)
    if ptr is None:
        raise ChannelBindingUnavailable(f"{name} not available")
    if name == "tls-server-end-point":
        return _server_end_point(ptr)
    if version != "TLSv1.3":
        raise ChannelBindingUnavailable("tls-exporter with tls before 1.3 not implemented, use tls-unique")
    assert _LIB is not None
    out = ctypes.create_string_buffer(32)
    if _LIB.SSL_export_keying_material(ptr, out, 32, EXPORTER_LABEL, len(EXPORTER_LABEL), None, 0, 0) != 1:
        raise ChannelBindingUnavailable("tls exporter failed")
    return out.raw
