"""An independent SMTP server (aiosmtpd) in its own process, for delivery tests.

Why a separate process: aiosmtpd runs on asyncio, the project on trio; keeping
it out of the test process means no event loops are mixed, and the client under
test talks to a peer it shares nothing with but the socket.

Parent side (pytest): :func:`smtp_sink` (sync context manager) and
:func:`open_smtp_sink` (async, for trio tests) write a JSON config, start
``python smtpsink.py <config>``, wait (bounded) for the "LISTENING <port>" line
and stop the process at exit. Received messages are stored as
``NNNN.eml`` (raw bytes as received, dot-unstuffed) plus ``NNNN.json``
(envelope, TLS state); :meth:`SMTPSink.messages` reads them.

Behaviour per recipient (keys are lower-cased addresses):

* ``rcpt_replies={"bad@x": "550 5.1.1 no such user"}`` – reply at RCPT TO;
* ``data_replies={"later@x": "451 4.3.0 try later"}`` – the DATA reply when this
  recipient was accepted (the first matching accepted recipient wins: one DATA
  reply covers the whole transaction);
* ``mail_reply`` – reply to every MAIL FROM;
* ``stall_data=True`` – never answer the final DATA (sleeps an hour);
* ``data_delay`` – seconds to wait before answering the final DATA;
  ``gate`` – a file path: while that file exists, final DATA replies are held.
  A client that goes away while its reply is held (killed) has its message
  dropped, not stored: it never heard the 250, so the message is not
  delivered (aiosmtpd cancels the handler when the connection is lost);
* ``starttls=True`` – offer STARTTLS with a generated self-signed cert;
  ``starttls_broken=True`` – offer it, answer 220 and then send garbage
  instead of a TLS handshake;
* ``smtputf8`` / ``eightbitmime`` / ``pipelining`` / ``enhancedstatuscodes`` –
  whether these extensions are announced; ``requiretls`` – announce
  REQUIRETLS after STARTTLS (and accept the MAIL parameter).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import trio

__all__ = [
    "ReceivedMessage",
    "SMTPSink",
    "SinkConfig",
    "make_self_signed_cert",
    "open_smtp_sink",
    "smtp_sink",
]

STARTUP_TIMEOUT = 15.0


@dataclass
class SinkConfig:
    """Behaviour of the sink process; serialised to JSON for the child."""

    outdir: str = ""
    host: str = "127.0.0.1"
    hostname: str = "sink.example"
    starttls: bool = False
    starttls_broken: bool = False
    certfile: str = ""
    keyfile: str = ""
    smtputf8: bool = True
    eightbitmime: bool = True
    pipelining: bool = True
    enhancedstatuscodes: bool = True
    requiretls: bool = False
    mail_reply: str = ""
    rcpt_replies: dict[str, str] = field(default_factory=dict)
    data_replies: dict[str, str] = field(default_factory=dict)
    stall_data: bool = False
    data_delay: float = 0.0
    gate: str = ""
    data_size_limit: int = 64 * 1024 * 1024


@dataclass
class ReceivedMessage:
    """One message the sink accepted."""

    data: bytes
    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    tls: bool
    tls_version: str | None
    requiretls: bool
    ehlo: str
    peer: str = ""
    #: CLOCK_MONOTONIC (system-wide) when DATA's content arrived and when it was answered.
    data_start: float = 0.0
    data_end: float = 0.0


class SMTPSink:
    """Handle on a running sink process."""

    def __init__(self, config: SinkConfig, proc: subprocess.Popen[bytes], port: int) -> None:
        self.config = config
        self.proc = proc
        self.host = config.host
        self.port = port
        self.outdir = Path(config.outdir)

    def messages(self) -> list[ReceivedMessage]:
        """Messages received so far, in arrival order (complete ones only)."""
        out = []
        for meta_path in sorted(self.outdir.glob("*.json")):
            meta = json.loads(meta_path.read_text())
            data = meta_path.with_suffix(".eml").read_bytes()
            out.append(
                ReceivedMessage(
                    data=data,
                    mail_from=meta["mail_from"],
                    rcpt_tos=meta["rcpt_tos"],
                    mail_options=meta["mail_options"],
                    tls=meta["tls"],
                    tls_version=meta["tls_version"],
                    requiretls=meta["requiretls"],
                    ehlo=meta["ehlo"],
                    peer=meta.get("peer", ""),
                    data_start=meta.get("data_start", 0.0),
                    data_end=meta.get("data_end", 0.0),
                )
            )
        return out

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def make_self_signed_cert(directory: Path, hostname: str = "localhost") -> tuple[str, str]:
    """Write a fresh self-signed ECDSA P-256 certificate and key (PEM) for
    ``hostname`` into ``directory``; return (certfile, keyfile)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir(parents=True, exist_ok=True)
    certfile = directory / "sink.crt"
    keyfile = directory / "sink.key"
    certfile.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyfile.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(certfile), str(keyfile)


def _start(tmp_path: Path, **kw: Any) -> SMTPSink:
    """Start the child process and wait (bounded) until it listens."""
    config = SinkConfig(**kw)
    config.rcpt_replies = {k.lower(): v for k, v in config.rcpt_replies.items()}
    config.data_replies = {k.lower(): v for k, v in config.data_replies.items()}
    tmp_path.mkdir(parents=True, exist_ok=True)
    if not config.outdir:
        config.outdir = str(tmp_path / "received")
    Path(config.outdir).mkdir(parents=True, exist_ok=True)
    if (config.starttls or config.starttls_broken) and not config.certfile:
        config.certfile, config.keyfile = make_self_signed_cert(tmp_path / "tls")
    cfgpath = tmp_path / "sink.json"
    cfgpath.write_text(json.dumps(asdict(config)))
    proc = subprocess.Popen(
        [sys.executable, os.path.abspath(__file__), str(cfgpath)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT
    line = b""
    while not line.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or proc.poll() is not None:
            proc.kill()
            proc.wait(timeout=5)
            raise RuntimeError(f"smtp sink did not start (got {line!r})")
        ready, _, _ = select.select([proc.stdout], [], [], min(remaining, 0.2))
        if ready:
            b = os.read(proc.stdout.fileno(), 1)
            if not b:
                continue
            line += b
    parts = line.decode().split()
    if len(parts) != 2 or parts[0] != "LISTENING":
        proc.kill()
        proc.wait(timeout=5)
        raise RuntimeError(f"unexpected startup line from smtp sink: {line!r}")
    return SMTPSink(config, proc, int(parts[1]))


@contextlib.contextmanager
def smtp_sink(tmp_path: Path, **kw: Any) -> Iterator[SMTPSink]:
    """Run a sink (see module docstring for keyword arguments) for the block."""
    sink = _start(tmp_path, **kw)
    try:
        yield sink
    finally:
        sink.stop()


@contextlib.asynccontextmanager
async def open_smtp_sink(tmp_path: Path, **kw: Any) -> AsyncIterator[SMTPSink]:
    """Trio variant of :func:`smtp_sink`: start/stop run in a worker thread so
    the event loop is not blocked while waiting for the child."""
    sink = await trio.to_thread.run_sync(lambda: _start(tmp_path, **kw))
    try:
        yield sink
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(sink.stop)


# --------------------------------------------------------------------------
# Child process: the aiosmtpd server. Only imported/run when executed as a
# script, so the test process never loads asyncio-based server code.


def _child_main(cfgpath: str) -> None:  # pragma: no cover - runs in the child
    import asyncio
    import ssl

    from aiosmtpd.smtp import SMTP, Envelope, Session

    cfg = SinkConfig(**json.loads(Path(cfgpath).read_text()))
    outdir = Path(cfg.outdir)
    counter = [0]

    tls_context = None
    if cfg.starttls or cfg.starttls_broken:
        tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls_context.load_cert_chain(cfg.certfile, cfg.keyfile)

    class SinkSMTP(SMTP):
        requiretls_seen = False

        async def smtp_MAIL(self, arg: str) -> None:
            # aiosmtpd rejects unknown MAIL parameters; accept REQUIRETLS when
            # announced (after TLS), remembering that the client sent it.
            self.requiretls_seen = False
            if arg and cfg.requiretls and self._tls_protocol is not None:
                words = arg.split()
                rest = [w for w in words if w.upper() != "REQUIRETLS"]
                if len(rest) != len(words):
                    self.requiretls_seen = True
                    arg = " ".join(rest)
            await super().smtp_MAIL(arg)

        async def smtp_STARTTLS(self, arg: str) -> None:
            if cfg.starttls_broken:
                await self.push("220 2.0.0 go ahead")
                assert self.transport is not None
                self.transport.write(b"this is not a tls handshake\r\n" * 4)  # type: ignore[attr-defined]
                self.transport.close()
                return
            await super().smtp_STARTTLS(arg)

    class Handler:
        async def handle_EHLO(
            self,
            server: SinkSMTP,
            session: Session,
            envelope: Envelope,
            hostname: str,
            responses: list[str],
        ) -> list[str]:
            session.host_name = hostname
            out = [r for r in responses if r != "250 HELP"]
            if not cfg.eightbitmime:
                out = [r for r in out if r != "250-8BITMIME"]
            if not cfg.smtputf8:
                out = [r for r in out if r != "250-SMTPUTF8"]
            if cfg.pipelining:
                out.append("250-PIPELINING")
            if cfg.enhancedstatuscodes:
                out.append("250-ENHANCEDSTATUSCODES")
            if cfg.requiretls and server._tls_protocol is not None:
                out.append("250-REQUIRETLS")
            out.append("250 HELP")
            return out

        async def handle_MAIL(
            self,
            server: SinkSMTP,
            session: Session,
            envelope: Envelope,
            address: str,
            mail_options: list[str],
        ) -> str:
            if cfg.mail_reply:
                return cfg.mail_reply
            envelope.mail_from = address
            envelope.mail_options.extend(mail_options)
            return "250 2.1.0 sender ok"

        async def handle_RCPT(
            self,
            server: SinkSMTP,
            session: Session,
            envelope: Envelope,
            address: str,
            rcpt_options: list[str],
        ) -> str:
            reply = cfg.rcpt_replies.get(address.lower())
            if reply:
                return reply
            envelope.rcpt_tos.append(address)
            return "250 2.1.5 recipient ok"

        async def handle_DATA(self, server: SinkSMTP, session: Session, envelope: Envelope) -> str:
            data_start = time.monotonic()
            if cfg.stall_data:
                await asyncio.sleep(3600)
            if cfg.data_delay:
                await asyncio.sleep(cfg.data_delay)
            while cfg.gate and os.path.exists(cfg.gate):  # noqa: ASYNC240 - a local stat in the sink process
                await asyncio.sleep(0.02)
            for rcpt in envelope.rcpt_tos:
                reply = cfg.data_replies.get(rcpt.lower())
                if reply:
                    return reply
            counter[0] += 1
            base = outdir / f"{counter[0]:04d}"
            content = envelope.original_content or b""
            if isinstance(content, str):
                content = content.encode()
            base.with_suffix(".eml").write_bytes(content)
            tls_version = None
            if session.ssl is not None:
                sslobj = session.ssl.get("ssl_object")
                tls_version = sslobj.version() if sslobj is not None else "unknown"
            meta = {
                "mail_from": envelope.mail_from,
                "rcpt_tos": list(envelope.rcpt_tos),
                "mail_options": list(envelope.mail_options),
                "tls": session.ssl is not None,
                "tls_version": tls_version,
                "requiretls": server.requiretls_seen,
                "ehlo": session.host_name,
                "peer": str(session.peer[0]) if session.peer else "",
                "data_start": data_start,
                "data_end": time.monotonic(),
            }
            tmp = base.with_suffix(".tmp")
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, base.with_suffix(".json"))
            return "250 2.0.0 message accepted"

    async def run() -> None:
        loop = asyncio.get_running_loop()
        handler = Handler()

        def factory() -> SinkSMTP:
            return SinkSMTP(
                handler,
                hostname=cfg.hostname,
                tls_context=tls_context,
                enable_SMTPUTF8=cfg.smtputf8,
                data_size_limit=cfg.data_size_limit,
                loop=loop,
            )

        server = await loop.create_server(factory, host=cfg.host, port=0)
        port = server.sockets[0].getsockname()[1]
        sys.stdout.write(f"LISTENING {port}\n")
        sys.stdout.flush()
        async with server:
            await server.serve_forever()

    import signal

    def on_term(*_: Any) -> None:
        os._exit(0)

    signal.signal(signal.SIGTERM, on_term)
    asyncio.run(run())


if __name__ == "__main__":  # pragma: no cover
    _child_main(sys.argv[1])
