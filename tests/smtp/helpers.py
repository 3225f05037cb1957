"""Test helpers for the SMTP server: certificates, a raw client, a SCRAM client."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import ipaddress
import re
import secrets
import smtplib
import ssl
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import trio
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from core.smtp.handler import MemoryHandler
from core.smtp.limits import ConnectionLimits
from core.smtp.server import serve_smtp
from core.smtp.session import SessionConfig

REPLY_LINE = re.compile(r"^[0-9]{3}[ -]")
CONN_ID = re.compile(r"\(([A-Za-z0-9_-]{22})\)$")
TIMEOUT = 10


@dataclass
class Certs:
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.cert), str(self.key))
        return ctx

    def client_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.cert))
        return ctx


def make_certs(directory: Path) -> Certs:
    """Self-signed certificate for localhost / 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certs(cert_path, key_path)


async def start(
    nursery: trio.Nursery,
    handler: MemoryHandler,
    config: SessionConfig | None = None,
    *,
    ssl_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    limits: ConnectionLimits | None = None,
    shutdown: trio.Event | None = None,
) -> int:
    """Start a listener on 127.0.0.1:0 in ``nursery``; returns the port."""
    cfg = config or SessionConfig(auth_fail_delay=0)
    ports = await nursery.start(
        partial(
            serve_smtp,
            "127.0.0.1",
            0,
            lambda: handler,
            config=cfg,
            ssl_context=ssl_context,
            implicit_tls=implicit_tls,
            limits=limits,
            shutdown=shutdown,
        )
    )
    return int(ports[0])


class RawClient:
    """Line-level SMTP client over a trio stream, for exact protocol checks."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buf = bytearray()

    @classmethod
    async def connect(cls, port: int, tls: ssl.SSLContext | None = None) -> RawClient:
        stream: trio.abc.Stream = await trio.open_tcp_stream("127.0.0.1", port)
        if tls is not None:
            s = trio.SSLStream(stream, tls, server_hostname="localhost")
            await s.do_handshake()
            stream = s
        return cls(stream)

    async def starttls(self, tls: ssl.SSLContext) -> None:
        s = trio.SSLStream(self.stream, tls, server_hostname="localhost")
        with trio.fail_after(TIMEOUT):
            await s.do_handshake()
        self.stream = s

    async def send(self, data: bytes | str) -> None:
        if isinstance(data, str):
            data = data.encode()
        await self.stream.send_all(data)

    async def line(self) -> str:
        with trio.fail_after(TIMEOUT):
            while b"\n" not in self.buf:
                data = await self.stream.receive_some(65536)
                if not data:
                    raise EOFError(bytes(self.buf))
                self.buf += data
        i = self.buf.index(b"\n")
        raw = bytes(self.buf[: i + 1])
        del self.buf[: i + 1]
        assert raw.endswith(b"\r\n"), raw
        return raw[:-2].decode()

    async def reply(self) -> list[str]:
        lines = []
        while True:
            line = await self.line()
            assert REPLY_LINE.match(line), line
            lines.append(line)
            if line[3] == " ":
                return lines

    async def cmd(self, line: str) -> list[str]:
        await self.send(line + "\r\n")
        return await self.reply()

    async def cmd1(self, line: str) -> str:
        r = await self.cmd(line)
        assert len(r) == 1, r
        return r[0]

    async def read_eof(self) -> bytes:
        """Everything until the server closes."""
        out = bytes(self.buf)
        self.buf.clear()
        with trio.fail_after(TIMEOUT):
            while True:
                try:
                    data = await self.stream.receive_some(65536)
                except trio.BrokenResourceError:
                    return out
                if not data:
                    return out
                out += data

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)


def plain_b64(user: str, password: str, authz: str = "") -> str:
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode()).decode()


class ScramClient:
    """Minimal SCRAM-SHA-* client (RFC 5802/7677), optionally with channel binding."""

    def __init__(
        self,
        username: str,
        password: str,
        authz: str = "",
        *,
        hash_name: str = "sha256",
        cb_name: str = "",
        cb_data: bytes = b"",
    ) -> None:
        self.username = username
        self.password = password
        self.hash_name = hash_name
        self.cb_data = cb_data
        self.nonce = base64.b64encode(secrets.token_bytes(12)).decode()
        name = username.replace("=", "=3D").replace(",", "=2C")
        self.gs2 = (f"p={cb_name}" if cb_name else "n") + "," + (f"a={authz}" if authz else "") + ","
        self.first_bare = f"n={name},r={self.nonce}"
        self.server_signature = b""

    def first(self) -> bytes:
        return (self.gs2 + self.first_bare).encode()

    def final(self, server_first: bytes) -> bytes:
        h = self.hash_name
        sf = server_first.decode()
        attrs = dict(a.split("=", 1) for a in sf.split(","))
        assert attrs["r"].startswith(self.nonce)
        salt = base64.b64decode(attrs["s"])
        iterations = int(attrs["i"])
        salted = hashlib.pbkdf2_hmac(h, self.password.encode(), salt, iterations)
        client_key = hmac.new(salted, b"Client Key", h).digest()
        stored_key = hashlib.new(h, client_key).digest()
        cbind = base64.b64encode(self.gs2.encode() + self.cb_data).decode()
        without_proof = "c=" + cbind + ",r=" + attrs["r"]
        auth_message = f"{self.first_bare},{sf},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, h).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature, strict=True))
        server_key = hmac.new(salted, b"Server Key", h).digest()
        self.server_signature = hmac.new(server_key, auth_message, h).digest()
        return (without_proof + ",p=" + base64.b64encode(proof).decode()).encode()

    def verify(self, server_final: bytes) -> bool:
        return server_final.decode() == "v=" + base64.b64encode(self.server_signature).decode()


async def scram_login(c: RawClient, mech: str, sc: ScramClient) -> str:
    """A whole SCRAM exchange with our own client; the final reply line."""
    r = await c.cmd1(f"AUTH {mech} " + base64.b64encode(sc.first()).decode())
    if not r.startswith("334 "):
        return r
    r = await c.cmd1(base64.b64encode(sc.final(base64.b64decode(r[4:]))).decode())
    if not r.startswith("334 "):
        return r
    final = base64.b64decode(r[4:])
    if final.startswith(b"e="):
        return await c.cmd1("*")
    assert sc.verify(final), final
    return await c.cmd1("")


def smtp_client(port: int, **kw: object) -> smtplib.SMTP:
    return smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=TIMEOUT, **kw)  # type: ignore[arg-type]
