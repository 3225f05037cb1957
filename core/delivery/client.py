"""Outbound SMTP delivery client (one SMTP transaction per call), on trio.

Why this shape: the queue delivers a *batch* (same message, several
recipients at one domain) in one transaction and needs a result per
recipient: success, or failure with the SMTP reply and whether it is
permanent. :func:`deliver` does the whole connection (dial each IP in turn,
greeting, EHLO/HELO, STARTTLS, REQUIRETLS checks, MAIL/RCPT (pipelined when
offered), streamed DATA with dot-stuffing, QUIT) and never raises for
delivery problems: everything ends up in a :class:`DeliveryResult`.

Semantics follow mox's smtpclient so queue results and webhooks look the same:

* 2xx → ok; 4xx → temporary; 5xx → permanent, except 552 at RCPT which
  RFC 5321 §4.5.3.1.10 says to treat as temporary (mox does too).
* Errors that are not SMTP replies (dial, timeout, TLS, broken connection) are
  temporary with code 0.
* A 421 reply anywhere ends the connection: all recipients not yet rejected get
  that temporary reply.
* ``Secode`` is the enhanced code without its class (``"1.1"`` for
  ``5.1.1``), and only parsed when the server announced ENHANCEDSTATUSCODES;
  :attr:`RecipientResult.enhanced_code` gives the webhook form (``"5.1.1"``).
* Missing 8BITMIME (message has 8-bit data) or SMTPUTF8 (message needs it):
  temporary, code 0, as mox does (mox's reasoning: greylisting front-ends
  like OpenBSD spamd don't announce extensions that the real server has).
* ``require_tls`` (REQUIRETLS, RFC 8689) without TLS or without the server
  announcing REQUIRETLS: permanent, code 554, secode ``7.30``
  (``DeliveryResult.requiretls_unsupported`` is set so a caller trying several
  MX hosts can move on, as mox does).
* Message larger than the server's announced SIZE: permanent, code 0.

Error texts copy mox's phrasing as observed from mox delivering to a local listener:

* reply at RCPT (pipelined):
  ``delivering message to 127.0.0.1:25: permanent: 550 5.1.1 no such user``;
  without pipelining the first part is ``remote smtp server sent unexpected
  response status code: got 550, expected 2xx, permanent: …``;
* reply to MAIL/DATA: ``delivering message to <ip:port>: remote smtp server
  sent unexpected response status code: got 550, expected 2xx, permanent:
  <line>``;
* timeout: ``delivering message to <ip:port>: data: reading line from remote:
  read tcp <local>->(remote): i/o timeout, transient``;

(mox repeats the suffix, ``permanent: <line>, permanent: <line>``, because it
wraps the error twice; we do not repeat it.)
* dial: ``dial tcp 127.0.0.1:25: connect: connection refused`` (as mox
  words it, no prefix); session set-up (greeting/EHLO/STARTTLS) errors are
  reported without the ``delivering message to`` prefix, like mox.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import os
import re
import socket
import ssl
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

import trio

from core.dns import DNSError, Resolver

__all__ = [
    "DeliveryResult",
    "RecipientResult",
    "TLSMode",
    "deliver",
    "dot_stuff_chunks",
]

TLSMode = Literal["opportunistic", "required", "none"]

CHUNK_SIZE = 64 * 1024
MAX_LINE = 16 * 1024
QUIT_TIMEOUT = 5.0

ERR_STATUS = "remote smtp server sent unexpected response status code"
ERR_PROTOCOL = "smtp protocol error"
ERR_TLS = "tls error"
ERR_8BITMIME = "remote smtp server does not implement 8bitmime extension, required by message"
ERR_SMTPUTF8 = "remote smtp server does not implement smtputf8 extension, required by message"
ERR_REQUIRETLS = "remote smtp server does not implement requiretls extension, required for delivery"
ERR_SIZE = "message too large for remote smtp server"


# --------------------------------------------------------------------------
# Results


@dataclass
class RecipientResult:
    """Outcome for one recipient of the transaction.

    ``code``/``secode``: on success those of the RCPT reply (mox stores these
    for delivered messages), on failure those of the failing reply; 0/"" for
    non-SMTP errors. ``line``/``more_lines``: the full reply (first line and
    continuation lines), for DSNs. ``error``: mox-style text, "" on success.
    """

    recipient: str
    ok: bool
    permanent: bool = False
    code: int = 0
    secode: str = ""
    line: str = ""
    more_lines: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def enhanced_code(self) -> str:
        """Webhook form ``"<class>.<secode>"`` (e.g. ``"5.1.1"``), or ``""``."""
        if not self.secode or not self.code:
            return ""
        return f"{self.code // 100}.{self.secode}"

    @property
    def reply_lines(self) -> list[str]:
        return ([self.line] if self.line else []) + list(self.more_lines)


@dataclass
class DeliveryResult:
    """Outcome of one delivery call.

    ``recipients`` always has one entry per requested recipient, in order.
    ``error``/``permanent``/``code``/``secode`` describe a connection- or
    transaction-level failure ("" if none, even if some recipients were
    rejected individually). ``ip`` is the address connected to (or last
    dialed), ``dialed_ips`` every address a connection was attempted to.
    """

    host: str
    port: int
    recipients: list[RecipientResult]
    ip: str | None = None
    dialed_ips: list[str] = field(default_factory=list)
    connected: bool = False
    tls: bool = False
    tls_version: str | None = None
    remote_helo: str = ""
    plaintext_fallback: bool = False
    requiretls_unsupported: bool = False
    error: str = ""
    permanent: bool = False
    code: int = 0
    secode: str = ""

    @property
    def all_ok(self) -> bool:
        return all(r.ok for r in self.recipients)

    @property
    def remote_addr(self) -> str:
        return _join_host_port(self.ip or self.host, self.port)


# --------------------------------------------------------------------------
# Internal errors


class _SMTPError(Exception):
    """Mirror of mox's smtpclient.Error: inner text + permanence + reply.

    ``botched``: the connection is in an unknown state (no QUIT). ``tls``: a
    STARTTLS failure (triggers the plaintext retry in opportunistic mode).
    ``transaction``: raised during the mail transaction, so the queue-visible
    text gets mox's ``delivering message to <addr>:`` wrapping.
    """

    def __init__(
        self,
        inner: str,
        *,
        permanent: bool = False,
        code: int = 0,
        secode: str = "",
        line: str = "",
        more_lines: list[str] | None = None,
        botched: bool = False,
        tls: bool = False,
        requiretls: bool = False,
    ) -> None:
        super().__init__(inner)
        self.inner = inner
        self.permanent = permanent
        self.code = code
        self.secode = secode
        self.line = line
        self.more_lines = list(more_lines or [])
        self.botched = botched
        self.tls = tls
        self.requiretls = requiretls

    def suffix(self) -> str:
        s = "permanent" if self.permanent else "transient"
        if self.line:
            s += ": " + self.line
        return s

    def text(self) -> str:
        """mox Error.Error(): ``<inner>, permanent|transient[: <line>]``."""
        return (self.inner + ", " if self.inner else "") + self.suffix()

    def delivery_text(self, addr: str) -> str:
        """The queue's text for a transaction error.

        mox wraps the error in a second one and so prints the permanence and
        the reply line twice (``..., permanent: 550 ..., permanent: 550 ...``);
        we say it once.
        """
        return f"delivering message to {addr}: {self.text()}"


@dataclass
class _Reply:
    code: int
    secode: str
    line: str
    more_lines: list[str]
    texts: list[str]  # text after code (and ecode) of continuation lines

    @property
    def ok(self) -> bool:
        return 200 <= self.code < 300


_ECODE_RE = re.compile(r"([245])\.(\d{1,3}\.\d{1,3})(?: |$)")


def _parse_ecode(code: int, text: str) -> tuple[str, str]:
    m = _ECODE_RE.match(text)
    if m is None or int(m.group(1)) != code // 100:
        return "", text
    return m.group(2), text[m.end() :]


def _join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _sockaddr_str(addr: object) -> str:
    if isinstance(addr, tuple) and len(addr) >= 2:
        return _join_host_port(str(addr[0]), int(addr[1]))
    return str(addr)


def _strerror(e: BaseException) -> str:
    """Go-like lower-case OS error text (``connection refused``)."""
    cur: BaseException | None = e
    for _ in range(5):
        if cur is None:
            break
        if isinstance(cur, OSError) and cur.errno is not None:
            return os.strerror(cur.errno).lower()
        if isinstance(cur, ssl.SSLError):
            return str(cur)
        cur = cur.__cause__ or cur.__context__
    return str(e) or type(e).__name__


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------
# Dot-stuffing


async def dot_stuff_chunks(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Turn message bytes into SMTP DATA payload, chunk by chunk.

    Line endings are normalised to CRLF (a bare LF becomes CRLF), lines
    starting with "." get an extra "." (RFC 5321 §4.5.2), and the terminating
    ``.\\r\\n`` is appended (after a CRLF if the message does not end with
    one). State carried across chunks: whether we are at a line start and a
    pending CR at a chunk end, so splitting never changes the result.
    """
    at_line_start = True
    carry = b""
    async for raw in chunks:
        buf = carry + raw
        carry = b""
        if buf.endswith(b"\r"):
            buf, carry = buf[:-1], b"\r"
        if not buf:
            continue
        buf = buf.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if at_line_start and buf.startswith(b"."):
            buf = b"." + buf
        buf = buf.replace(b"\r\n.", b"\r\n..")
        at_line_start = buf.endswith(b"\r\n")
        yield buf
    tail = carry
    if tail:
        # A lone CR at the very end: complete it to CRLF.
        tail = b"\r\n"
        at_line_start = True
    if not at_line_start:
        tail += b"\r\n"
    yield tail + b".\r\n"


async def _message_chunks(
    data: bytes | str | os.PathLike[str], prefix: bytes
) -> AsyncIterator[bytes]:
    """Yield prefix, then the message (bytes or file, read in CHUNK_SIZE
    pieces through trio's thread-backed file API, never whole in memory)."""
    if prefix:
        yield prefix
    if isinstance(data, bytes | bytearray | memoryview):
        b = bytes(data)
        for i in range(0, len(b), CHUNK_SIZE):
            yield b[i : i + CHUNK_SIZE]
        return
    f = await trio.open_file(os.fspath(data), "rb")
    try:
        while True:
            chunk = await f.read(CHUNK_SIZE)
            if not chunk:
                break
            yield chunk
    finally:
        with trio.CancelScope(shield=True):
            await f.aclose()


# --------------------------------------------------------------------------
# Connection


class _Conn:
    """Line-oriented SMTP connection with per-operation and phase deadlines.

    Every read/write gets ``min(now + io_timeout, phase_deadline)``; hitting
    it produces a Go-style ``i/o timeout`` error, which is what mox reports.
    ``cmds`` names the commands whose replies are outstanding, for error texts
    like ``mailfrom,rcptto,data: reading line from remote: …``.
    """

    def __init__(self, sock_stream: trio.SocketStream, io_timeout: float) -> None:
        self.sock_stream = sock_stream
        self.stream: trio.abc.Stream = sock_stream
        self.io_timeout = io_timeout
        self.phase_deadline = float("inf")
        self.buf = bytearray()
        self.cmds: list[str] = ["(none)"]
        self.ecodes = False
        self.tls = False
        self.tls_version: str | None = None
        self.broken = False  # an i/o error happened: no QUIT, just close
        try:
            self.local = _sockaddr_str(sock_stream.socket.getsockname())
            self.remote = _sockaddr_str(sock_stream.socket.getpeername())
        except OSError:
            self.local = self.remote = "?"

    def _deadline(self) -> float:
        return min(trio.current_time() + self.io_timeout, self.phase_deadline)

    def _io_error(self, op: str, what: str) -> str:
        self.broken = True
        return f"{op} tcp {self.local}->{self.remote}: {what}"

    async def readline(self) -> str:
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                raw = bytes(self.buf[:i])
                del self.buf[: i + 1]
                return raw.rstrip(b"\r").decode("utf-8", errors="replace")
            if len(self.buf) > MAX_LINE:
                raise _SMTPError(f"{ERR_PROTOCOL}: line too long", botched=True)
            prefix = ",".join(self.cmds) + ": reading line from remote: "
            with trio.move_on_at(self._deadline()) as cs:
                try:
                    data = await self.stream.receive_some(CHUNK_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                    raise _SMTPError(
                        prefix + self._io_error("read", _strerror(e)), botched=True
                    ) from None
            if cs.cancelled_caught:
                raise _SMTPError(prefix + self._io_error("read", "i/o timeout"), botched=True)
            if not data:
                self.broken = True
                what = "unexpected EOF" if self.buf else "EOF"
                raise _SMTPError(prefix + what, botched=True)
            self.buf += data

    async def read_reply(self, ecodes: bool | None = None) -> _Reply:
        """Read a (multi-line) reply. Enhanced codes are parsed only when the
        server announced them (``ecodes`` defaults to that)."""
        use_ecodes = self.ecodes if ecodes is None else ecodes
        code = 0
        secode = ""
        first = ""
        more: list[str] = []
        texts: list[str] = []
        for n in range(1000):
            line = await self.readline()
            if n == 0:
                first = line
            else:
                more.append(line)
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                raise _SMTPError(
                    f"{ERR_PROTOCOL}: expected response code: {line}", line=line, botched=True
                )
            co = int(line[:3])
            if code and co != code:
                raise _SMTPError(
                    f"{ERR_PROTOCOL}: multiline response with different codes, previous {code}, last {co}",
                    line=first,
                    more_lines=more,
                    botched=True,
                )
            code = co
            last = len(line) == 3 or line[3] == " "
            text = line[4:]
            if use_ecodes:
                secode, text = _parse_ecode(code, text)
            if n > 0:
                texts.append(text)
            if last:
                if len(self.cmds) > 1:
                    self.cmds = self.cmds[1:]
                return _Reply(code, secode, first, more, texts)
        raise _SMTPError(f"{ERR_PROTOCOL}: too many response lines", botched=True)

    async def write(self, data: bytes, what: str = "write") -> None:
        with trio.move_on_at(self._deadline()) as cs:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as e:
                raise _SMTPError(
                    f"{what}: " + self._io_error("write", _strerror(e)), botched=True
                ) from None
        if cs.cancelled_caught:
            raise _SMTPError(f"{what}: " + self._io_error("write", "i/o timeout"), botched=True)

    async def command(self, line: str, cmd: str) -> _Reply:
        self.cmds = [cmd]
        await self.write(line.encode("utf-8") + b"\r\n")
        return await self.read_reply()

    async def close(self) -> None:
        await trio.aclose_forcefully(self.stream)


# --------------------------------------------------------------------------
# Session


@dataclass
class _Ext:
    starttls: bool = False
    ecodes: bool = False
    eightbitmime: bool = False
    pipelining: bool = False
    smtputf8: bool = False
    requiretls: bool = False
    size: bool = False
    max_size: int = 0


def _status_error(reply: _Reply, inner: str, *, permanent: bool | None = None) -> _SMTPError:
    return _SMTPError(
        inner,
        permanent=reply.code // 100 == 5 if permanent is None else permanent,
        code=reply.code,
        secode=reply.secode,
        line=reply.line,
        more_lines=reply.more_lines,
        botched=reply.code == 421,
    )


def _client_ssl_context(tls_verify: bool) -> ssl.SSLContext:
    if tls_verify:
        ctx = ssl.create_default_context()
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


async def _ehlo(conn: _Conn, ehlo_name: str, helo_ok: bool) -> _Ext:
    """EHLO, falling back to HELO when the server says it doesn't know EHLO."""
    conn.cmds = ["ehlo"]
    await conn.write(f"EHLO {ehlo_name}\r\n".encode())
    reply = await conn.read_reply(ecodes=False)
    ext = _Ext()
    if reply.code in (500, 501, 502, 503, 504):
        if not helo_ok:
            raise _status_error(
                reply, f"{ERR_PROTOCOL}: remote claims ehlo is not supported", permanent=True
            )
        conn.cmds = ["helo"]
        await conn.write(f"HELO {ehlo_name}\r\n".encode())
        reply = await conn.read_reply(ecodes=False)
        if reply.code != 250:
            raise _status_error(reply, f"{ERR_STATUS}: expected 250 to HELO, got {reply.code}")
        return ext
    if reply.code != 250:
        raise _status_error(reply, f"{ERR_STATUS}: expected 250, got {reply.code}")
    for t in reply.texts:
        s = t.strip().upper()
        if s == "STARTTLS":
            ext.starttls = True
        elif s == "ENHANCEDSTATUSCODES":
            ext.ecodes = True
        elif s == "8BITMIME":
            ext.eightbitmime = True
        elif s == "PIPELINING":
            ext.pipelining = True
        elif s == "REQUIRETLS":
            ext.requiretls = True
        elif s == "SMTPUTF8" or s.startswith("SMTPUTF8 "):
            ext.smtputf8 = True
        elif s == "SIZE" or s.startswith("SIZE "):
            ext.size = True
            v = s[5:].strip()
            if v.isdigit():
                ext.max_size = int(v)
    conn.ecodes = ext.ecodes
    return ext


async def _starttls(
    conn: _Conn, host: str, tls_verify: bool, ssl_context: ssl.SSLContext | None
) -> None:
    reply = await conn.command("STARTTLS", "starttls")
    if reply.code != 220:
        err = _status_error(reply, f"{ERR_TLS}: STARTTLS: got {reply.code}, expected 220")
        err.tls = True
        raise err
    # Anything the server sent after its 220 would be read as if it came over
    # TLS (STARTTLS command injection, CVE-2011-0411 style): discard it.
    conn.buf.clear()
    ctx = ssl_context or _client_ssl_context(tls_verify)
    server_hostname = None if _is_ip(host) else host
    tls_stream = trio.SSLStream(conn.sock_stream, ctx, server_hostname=server_hostname)
    with trio.move_on_at(conn._deadline()) as cs:
        try:
            await tls_stream.do_handshake()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError, ssl.SSLError) as e:
            raise _SMTPError(
                f"{ERR_TLS}: STARTTLS TLS handshake: {_strerror(e)}", botched=True, tls=True
            ) from None
    if cs.cancelled_caught:
        raise _SMTPError(f"{ERR_TLS}: STARTTLS TLS handshake: i/o timeout", botched=True, tls=True)
    conn.stream = tls_stream
    conn.tls = True
    conn.tls_version = tls_stream.version()


@dataclass
class _Txn:
    """Inputs of one mail transaction."""

    mail_from: str
    recipients: list[str]
    data: bytes | str | os.PathLike[str]
    prefix: bytes
    size: int
    has8bit: bool
    smtputf8: bool
    require_tls: bool


def _fail_pending(
    results: list[RecipientResult | None], recipients: list[str], err: _SMTPError, addr: str
) -> None:
    """Apply a transaction-level error to every recipient not already rejected
    at RCPT (those without a reply yet and those accepted but not delivered)."""
    text = err.delivery_text(addr)
    for i, r in enumerate(results):
        if r is not None and not r.ok:
            continue
        results[i] = RecipientResult(
            recipient=recipients[i],
            ok=False,
            permanent=err.permanent,
            code=err.code,
            secode=err.secode,
            line=err.line,
            more_lines=list(err.more_lines),
            error=text,
        )


def _rcpt_result(rcpt: str, reply: _Reply, addr: str, pipelined: bool) -> RecipientResult:
    if reply.ok:
        return RecipientResult(
            rcpt,
            ok=True,
            code=reply.code,
            secode=reply.secode,
            line=reply.line,
            more_lines=reply.more_lines,
        )
    # 552 at RCPT is historically a temporary "too many recipients". RFC 5321 §4.5.3.1.10
    permanent = reply.code // 100 == 5 and reply.code != 552
    inner = "" if pipelined else f"{ERR_STATUS}: got {reply.code}, expected 2xx"
    err = _SMTPError(
        inner,
        permanent=permanent,
        code=reply.code,
        secode=reply.secode,
        line=reply.line,
        more_lines=reply.more_lines,
    )
    return RecipientResult(
        rcpt,
        ok=False,
        permanent=permanent,
        code=reply.code,
        secode=reply.secode,
        line=reply.line,
        more_lines=list(reply.more_lines),
        error=err.delivery_text(addr),
    )


async def _transaction(
    conn: _Conn, ext: _Ext, txn: _Txn, addr: str, results: list[RecipientResult | None]
) -> None:
    """MAIL, RCPT…, DATA. Fills ``results``; raises _SMTPError for errors that
    apply to every recipient still pending (the caller applies them)."""
    if txn.has8bit and not ext.eightbitmime:
        raise _SMTPError(ERR_8BITMIME)
    if txn.smtputf8 and not ext.smtputf8:
        raise _SMTPError(ERR_SMTPUTF8)
    if txn.require_tls and not (conn.tls and ext.requiretls):
        raise _SMTPError(ERR_REQUIRETLS, permanent=True, code=554, secode="7.30", requiretls=True)
    if ext.size and ext.max_size > 0 and txn.size > ext.max_size:
        raise _SMTPError(
            f"{ERR_SIZE}: message is {txn.size} bytes, remote has a {ext.max_size} bytes maximum size",
            permanent=True,
        )

    mail = f"MAIL FROM:<{txn.mail_from}>"
    if ext.size:
        mail += f" SIZE={txn.size}"
    if ext.eightbitmime:
        mail += " BODY=8BITMIME" if txn.has8bit else " BODY=7BIT"
    if txn.smtputf8:
        mail += " SMTPUTF8"
    if txn.require_tls:
        mail += " REQUIRETLS"

    rcpts = txn.recipients
    accepted: list[int] = []

    if ext.pipelining:
        conn.cmds = ["mailfrom"] + ["rcptto"] * len(rcpts) + ["data"]
        payload = (
            (mail + "\r\n").encode()
            + b"".join(f"RCPT TO:<{r}>\r\n".encode() for r in rcpts)
            + b"DATA\r\n"
        )
        write_err: list[_SMTPError] = []
        write_done = trio.Event()

        async def writer() -> None:
            try:
                await conn.write(payload, "writing pipelined mail/rcpt/data")
            except _SMTPError as e:
                write_err.append(e)
            finally:
                write_done.set()

        mf: _Reply | None = None
        data_reply: _Reply | None = None
        read_err: _SMTPError | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            try:
                mf = await conn.read_reply()
                if mf.code == 421:
                    raise _status_error(mf, f"{ERR_STATUS}: got {mf.code}, expected 2xx")
                for i, r in enumerate(rcpts):
                    rr = await conn.read_reply()
                    results[i] = _rcpt_result(r, rr, addr, pipelined=True)
                    if rr.code == 421:
                        raise _status_error(rr, f"{ERR_STATUS}: got {rr.code}, expected 2xx")
                    if rr.ok:
                        accepted.append(i)
                data_reply = await conn.read_reply()
            except _SMTPError as e:
                read_err = e
            if read_err is None:
                # The server answers DATA only after reading all commands, so
                # the writer is normally done; bound the wait regardless.
                with trio.move_on_after(conn.io_timeout):
                    await write_done.wait()
            nursery.cancel_scope.cancel()

        if mf is not None and not mf.ok:
            err = _status_error(mf, f"{ERR_STATUS}: got {mf.code}, expected 2xx")
            err.botched = err.botched or bool(write_err) or read_err is not None
            for i in range(len(results)):
                results[i] = None
            raise err
        if read_err is not None:
            if read_err.code == 421:
                raise read_err
            if not accepted and all(r is not None for r in results):
                # Server hung up after rejecting every recipient: their RCPT
                # replies are the meaningful results.
                read_err.botched = True
                return
            raise read_err
        if write_err:
            raise write_err[0]
        assert data_reply is not None
        if not accepted:
            # RFC 2920: a server may answer 354 to DATA without recipients; end
            # the (empty) message to get the connection back to a known state.
            if data_reply.code == 354:
                conn.cmds = ["data"]
                await conn.write(b".\r\n")
                await conn.read_reply()
            return
        if data_reply.code != 354:
            raise _status_error(data_reply, f"{ERR_STATUS}: got {data_reply.code}, expected 354")
    else:
        reply = await conn.command(mail, "mailfrom")
        if not reply.ok:
            raise _status_error(reply, f"{ERR_STATUS}: got {reply.code}, expected 2xx")
        for i, r in enumerate(rcpts):
            rr = await conn.command(f"RCPT TO:<{r}>", "rcptto")
            results[i] = _rcpt_result(r, rr, addr, pipelined=False)
            if rr.code == 421:
                raise _status_error(rr, f"{ERR_STATUS}: got {rr.code}, expected 2xx")
            if rr.ok:
                accepted.append(i)
        if not accepted:
            return
        reply = await conn.command("DATA", "data")
        if reply.code != 354:
            raise _status_error(reply, f"{ERR_STATUS}: got {reply.code}, expected 354")

    # Message content: streamed, dot-stuffed.
    conn.cmds = ["data"]
    try:
        async for chunk in dot_stuff_chunks(_message_chunks(txn.data, txn.prefix)):
            await conn.write(chunk, "writing message as smtp data")
    except OSError as e:
        # Reading the message file failed: our problem, temporary.
        raise _SMTPError(f"reading message file: {_strerror(e)}", botched=True) from None
    final = await conn.read_reply()
    if not final.ok:
        raise _status_error(final, f"{ERR_STATUS}: got {final.code}, expected 2xx")
    # Success: accepted recipients keep their RCPT reply (code/secode), as mox.


async def _dial(
    ips: list[str], port: int, dial_timeout: float, dialed: list[str]
) -> tuple[trio.SocketStream | None, str | None, str]:
    """Connect to the first IP that accepts. Returns (stream, ip, last error)."""
    last_err = "no ip addresses to connect to"
    for ip in ips:
        dialed.append(ip)
        addr = _join_host_port(ip, port)
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        sock = trio.socket.socket(family, socket.SOCK_STREAM)
        try:
            with trio.move_on_after(dial_timeout) as cs:
                await sock.connect((ip, port))
            if cs.cancelled_caught:
                last_err = f"dial tcp {addr}: i/o timeout"
                sock.close()
                continue
        except OSError as e:
            sock.close()
            what = os.strerror(e.errno).lower() if e.errno else str(e)
            if e.errno in (
                errno.ECONNREFUSED,
                errno.ENETUNREACH,
                errno.EHOSTUNREACH,
                errno.ECONNRESET,
            ):
                last_err = f"dial tcp {addr}: connect: {what}"
            else:
                last_err = f"dial tcp {addr}: {what}"
            continue
        return trio.SocketStream(sock), ip, last_err
    return None, None, last_err


async def _attempt(
    *,
    host: str,
    ip: str,
    stream: trio.SocketStream,
    port: int,
    ehlo_name: str,
    txn: _Txn,
    tls_mode: TLSMode,
    tls_verify: bool,
    ssl_context: ssl.SSLContext | None,
    session_timeout: float,
    read_timeout: float,
    data_timeout: float,
    result: DeliveryResult,
) -> _SMTPError | None:
    """One SMTP session on a connected stream. Fills ``result``; returns the
    session-level error (for the plaintext-retry decision)."""
    conn = _Conn(stream, read_timeout)
    addr = _join_host_port(ip, port)
    results: list[RecipientResult | None] = [None] * len(txn.recipients)
    botched = False
    session_err: _SMTPError | None = None
    try:
        # Session set-up: greeting, EHLO, STARTTLS.
        conn.phase_deadline = trio.current_time() + session_timeout
        try:
            conn.cmds = ["(greeting)"]
            greeting = await conn.read_reply(ecodes=False)
            if greeting.code != 220:
                raise _status_error(greeting, f"{ERR_STATUS}: expected 220, got {greeting.code}")
            result.remote_helo = (
                greeting.line[4:].split(" ", 1)[0] if len(greeting.line) > 4 else ""
            )
            ext = await _ehlo(conn, ehlo_name, helo_ok=True)
            if tls_mode == "required" or (tls_mode == "opportunistic" and ext.starttls):
                await _starttls(conn, host, tls_verify, ssl_context)
                result.tls = True
                result.tls_version = conn.tls_version
                ext = await _ehlo(conn, ehlo_name, helo_ok=False)
        except _SMTPError as e:
            botched = e.botched
            session_err = e
            _apply_session_error(result, e)
            return e

        # Mail transaction.
        conn.phase_deadline = trio.current_time() + data_timeout
        try:
            await _transaction(conn, ext, txn, addr, results)
        except _SMTPError as e:
            botched = e.botched
            _fail_pending(results, txn.recipients, e, addr)
            result.error = e.delivery_text(addr)
            result.permanent = e.permanent
            result.code = e.code
            result.secode = e.secode
            result.requiretls_unsupported = e.requiretls
    finally:
        try:
            if not botched and not conn.broken:
                conn.phase_deadline = trio.current_time() + min(QUIT_TIMEOUT, read_timeout)
                conn.cmds = ["quit"]
                try:
                    await conn.write(b"QUIT\r\n")
                    await conn.readline()
                except _SMTPError:
                    pass
        finally:
            await conn.close()
        for i, r in enumerate(results):
            if r is not None:
                result.recipients[i] = r
            elif session_err is None and not result.error:
                # Should not happen; never report success we didn't get.
                result.recipients[i] = RecipientResult(
                    txn.recipients[i], ok=False, error="internal error: no result for recipient"
                )
    return None


def _apply_session_error(result: DeliveryResult, e: _SMTPError) -> None:
    text = e.text()
    result.error = text
    result.permanent = e.permanent
    result.code = e.code
    result.secode = e.secode
    for i, r in enumerate(result.recipients):
        result.recipients[i] = RecipientResult(
            r.recipient,
            ok=False,
            permanent=e.permanent,
            code=e.code,
            secode=e.secode,
            line=e.line,
            more_lines=list(e.more_lines),
            error=text,
        )


def _fail_result(result: DeliveryResult, text: str, *, permanent: bool = False) -> DeliveryResult:
    result.error = text
    result.permanent = permanent
    result.recipients = [
        RecipientResult(r.recipient, ok=False, permanent=permanent, error=text)
        for r in result.recipients
    ]
    return result


def _tell_connected(stream: trio.SocketStream, on_connect: Callable[[str, int], None] | None) -> None:
    if on_connect is None:
        return
    try:
        local = stream.socket.getsockname()
    except OSError:
        return
    on_connect(str(local[0]), int(local[1]))


async def deliver(
    *,
    host: str,
    ips: list[str] | None,
    port: int,
    ehlo_name: str,
    mail_from: str,
    recipients: list[str],
    data: bytes | str | os.PathLike[str],
    prefix: bytes = b"",
    size: int | None = None,
    has8bit: bool = False,
    smtputf8: bool = False,
    require_tls: bool = False,
    tls_mode: TLSMode = "opportunistic",
    tls_verify: bool = False,
    ssl_context: ssl.SSLContext | None = None,
    dial_timeout: float = 30.0,
    session_timeout: float = 60.0,
    read_timeout: float = 30.0,
    data_timeout: float | None = None,
    resolver: Resolver | None = None,
    on_connect: Callable[[str, int], None] | None = None,
) -> DeliveryResult:
    """Deliver one message to ``recipients`` at ``host`` in one SMTP transaction.

    ``data`` is the message (bytes) or the path of the stored message file;
    ``prefix`` is sent before it (MsgPrefix: Received, DKIM-Signature…). The
    file is streamed, never read whole. ``size`` (for SIZE=) defaults to
    len(prefix) + len(data or file).

    ``ips``: addresses to try in order (TCP connect only: once connected, SMTP
    errors don't move on to the next IP). None: ``host`` itself if it is an IP,
    else looked up with ``resolver`` (or the system resolver).

    ``tls_mode``: "opportunistic" (STARTTLS if offered, unverified unless
    ``tls_verify``; a failed TLS handshake is retried once in plaintext unless
    ``require_tls``), "required" (always STARTTLS, fail without it), "none".
    ``ssl_context`` overrides the generated client context.

    Timeouts (seconds): ``dial_timeout`` per IP; ``session_timeout`` for
    greeting+EHLO+STARTTLS; ``data_timeout`` for the transaction from MAIL to
    the final reply (default 60 + 1 per MiB); ``read_timeout`` for each
    individual read/write.

    ``on_connect(local_ip, local_port)`` is called for each connection made,
    before any SMTP command (a plugin delivering to our own listener links
    its deliveries to what the listener receives that way).

    Raises ValueError for unusable arguments (no recipients, CR/LF in
    addresses); all delivery problems are reported in the result.
    """
    if not recipients:
        raise ValueError("need at least one recipient")
    for a in [mail_from, *recipients, ehlo_name]:
        if "\r" in a or "\n" in a or "<" in a or ">" in a:
            raise ValueError(f"invalid character in address or name {a!r}")
    if tls_mode not in ("opportunistic", "required", "none"):
        raise ValueError(f"unknown tls mode {tls_mode!r}")
    if require_tls and tls_mode == "none":
        tls_mode = "required"
    result = DeliveryResult(
        host=host,
        port=port,
        recipients=[RecipientResult(r, ok=False) for r in recipients],
    )
    if size is None:
        if isinstance(data, bytes | bytearray | memoryview):
            size = len(prefix) + len(data)
        else:
            try:
                st = await trio.to_thread.run_sync(os.stat, os.fspath(data))
            except OSError as e:
                # mox: "open message file: …" – a local problem, temporary.
                return _fail_result(result, f"open message file: {_strerror(e)}")
            size = len(prefix) + st.st_size
    if data_timeout is None:
        data_timeout = 60.0 + size / (1024 * 1024)
    txn = _Txn(mail_from, list(recipients), data, prefix, size, has8bit, smtputf8, require_tls)

    if ips is None:
        if _is_ip(host):
            ips = [host]
        else:
            try:
                if resolver is not None:
                    ips = await resolver.lookup_ips(host)
                else:
                    infos = await trio.socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
                    ips = list(dict.fromkeys(str(i[4][0]) for i in infos))
            except DNSError as e:
                return _fail_result(result, str(e), permanent=e.permanent)
            except OSError as e:
                return _fail_result(result, f'looking up "{host}": {_strerror(e)}')

    stream, ip, dial_err = await _dial(list(ips), port, dial_timeout, result.dialed_ips)
    result.ip = ip if ip is not None else (result.dialed_ips[-1] if result.dialed_ips else None)
    if stream is None or ip is None:
        return _fail_result(result, dial_err)
    result.connected = True
    _tell_connected(stream, on_connect)

    attempt = functools.partial(
        _attempt,
        host=host,
        ip=ip,
        port=port,
        ehlo_name=ehlo_name,
        txn=txn,
        tls_verify=tls_verify,
        ssl_context=ssl_context,
        session_timeout=session_timeout,
        read_timeout=read_timeout,
        data_timeout=data_timeout,
    )
    err = await attempt(stream=stream, tls_mode=tls_mode, result=result)
    if err is not None and err.tls and tls_mode == "opportunistic" and not require_tls:
        # Like other MTAs (RFC 7435 §4): a broken TLS stack should not block
        # delivery when TLS was only opportunistic. One plaintext retry.
        stream2, ip2, dial_err2 = await _dial([ip], port, dial_timeout, result.dialed_ips)
        if stream2 is None:
            return result  # keep the TLS error: it is the more useful one
        _tell_connected(stream2, on_connect)
        fresh = DeliveryResult(
            host=host,
            port=port,
            recipients=[RecipientResult(r, ok=False) for r in recipients],
            ip=ip2,
            dialed_ips=result.dialed_ips,
            connected=True,
            plaintext_fallback=True,
        )
        await attempt(stream=stream2, tls_mode="none", result=fresh)
        return fresh
    return result
