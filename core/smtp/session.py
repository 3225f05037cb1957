"""One SMTP connection: the protocol state machine, over any trio Stream.

The session reads commands, answers them with mox's replies, and asks its
:class:`~core.smtp.handler.SessionHandler` whenever storage or config has a
say (logins, senders, recipients, delivery). It owns no sockets: the server
(or a test) hands it a stream and closes that stream afterwards (after
STARTTLS, :attr:`Session.stream` is the TLS stream).

Replies are buffered and only sent when the session is about to wait for
input (or closes), which gives PIPELINING for free: a client that writes
MAIL/RCPT/DATA in one go gets the replies in one go, in order.

:meth:`Session.run` never raises (except trio's Cancelled): protocol errors
become replies, I/O errors and handler bugs are logged and end the session.
"""

from __future__ import annotations

import logging
import os
import secrets
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import trio

from core import mlog, tlsbinding
from core.loginlimit import LoginLimiter
from core.smtp.handler import Envelope, LoginInfo, ReceivedMessage, SessionHandler, SessionInfo
from core.smtp.observe import trace_read, trace_write
from core.smtp.parser import (
    DEFAULT_MAX_MESSAGE_SIZE,
    FUTURE_RELEASE_MAX_SECONDS,
    RCPT_MAX,
    DataDecoder,
    MailContext,
    parse_hello,
    parse_mail,
    parse_no_args,
    parse_noop,
    parse_rcpt,
    parse_vrfy,
    split_command,
)
from core.smtp.reply import Reply, SMTPError, error
from core.smtp.saslcmd import MECHANISMS, MECHANISMS_PLUS, AuthCommand, AuthIO, AuthOutcome

log = logging.getLogger("moxtrio.smtp")

RECEIVE_SIZE = 64 * 1024
WRITE_BATCH = 1024 * 1024


@dataclass
class SessionConfig:
    """Per-listener protocol settings (the lead maps mox.conf onto these).

    Mapping from a mox listener: ``smtp``: require_tls_for_auth irrelevant,
    require_tls_for_delivery = ``SMTP.RequireSTARTTLS``, requiretls_enabled =
    not ``SMTP.NoRequireTLS``, ssl_context unless ``SMTP.NoSTARTTLS``;
    ``submission``: require_tls_for_auth = require_tls_for_delivery = not
    ``Submission.NoRequireSTARTTLS``; ``submissions``: both True (always TLS).
    """

    hostname: str = "localhost"
    max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE
    ssl_context: ssl.SSLContext | None = None  # Offer STARTTLS when set.
    require_tls_for_auth: bool = True
    require_tls_for_delivery: bool = False
    requiretls_enabled: bool = True
    pedantic: bool = False
    idle_timeout: float = 300.0  # Waiting for a command or any read.
    write_timeout: float = 30.0
    data_timeout: float = 1800.0  # Whole DATA transfer.
    tls_handshake_timeout: float = 60.0
    auth_fail_delay: float = 1.0  # Per failure beyond the third on a connection.
    max_line_length: int = 2048  # Including line ending, like mox's line buffer.
    max_errors: int = 50  # Error replies before the connection is closed.
    tmp_dir: str | None = None  # Where DATA is spooled; None: system temp dir.
    greeting: str = "ESMTP moxtrio"
    # Key for SCRAM decoy salts of unknown users; keep it across restarts
    # (the server stores one) so a name's decoy salt never changes.
    decoy_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))


class _Close(Exception):
    """End the session (pending replies are flushed first)."""


class PrefixStream(trio.abc.Stream):
    """A stream that first returns ``prefix``: bytes a client sent right after
    STARTTLS belong to the TLS handshake, not to the plaintext session (which
    also defeats plaintext command injection)."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self._stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            n = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:n], self._prefix[n:]
            return bytes(data)
        return bytes(await self._stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self._stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self._stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self._stream.aclose()


class Session:
    """State and command handlers for one connection."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        handler: SessionHandler,
        config: SessionConfig,
        info: SessionInfo,
        *,
        auth_limiter: LoginLimiter | None = None,
    ) -> None:
        self.stream = stream
        self.handler = handler
        self.config = config
        self.info = info
        self.auth_limiter = auth_limiter
        self._buf = bytearray()
        self._out = bytearray()
        self._envelope: Envelope | None = None
        self._hello = False
        self._auth_failed = 0
        self._binding: bool | None = None  # -PLUS offered on this TLS connection.
        self._tx_good = 0
        self._tx_bad = 0
        self._ncmds = 0
        self._errors = 0
        self._data_deadline: float | None = None
        self._idle_scope: trio.CancelScope | None = None
        self._shutting_down = False
        self._commands: dict[str, Callable[[str], Awaitable[None]]] = {
            "helo": self._cmd_helo,
            "ehlo": self._cmd_ehlo,
            "starttls": self._cmd_starttls,
            "auth": self._cmd_auth,
            "mail": self._cmd_mail,
            "rcpt": self._cmd_rcpt,
            "data": self._cmd_data,
            "bdat": self._cmd_bdat,
            "rset": self._cmd_rset,
            "vrfy": self._cmd_vrfy,
            "expn": self._cmd_expn,
            "help": self._cmd_help,
            "noop": self._cmd_noop,
            "quit": self._cmd_quit,
        }

    @property
    def submission(self) -> bool:
        return self.handler.listener_kind != "smtp"

    def request_shutdown(self) -> None:
        """Ask the session to end with ``421 4.3.2 shutting down`` at the next command
        (immediately if it is idle, waiting for one)."""
        self._shutting_down = True
        if self._idle_scope is not None:
            self._idle_scope.cancel()

    # -- main loop ---------------------------------------------------------------

    async def run(self) -> None:
        try:
            self._reply(Reply(220, "", f"{self.config.hostname} {self.config.greeting}"))
            while True:
                await self._command()
        except _Close:
            pass
        except trio.TooSlowError:
            log.info("smtp connection timed out, conn %s", self.info.conn_id)
            self._out.clear()
            self._reply(
                Reply(
                    421,
                    "4.4.2",
                    f"{self.config.hostname} timeout, closing connection",
                    with_id=False,
                )
            )
        except (trio.BrokenResourceError, trio.ClosedResourceError) as e:
            log.info("smtp connection closed: %s, conn %s", e, self.info.conn_id)
            self._out.clear()
        except Exception:
            log.exception("unhandled error in smtp session, conn %s", self.info.conn_id)
            self._out.clear()
        await self._flush_quietly()

    async def _flush_quietly(self) -> None:
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        with trio.move_on_after(5):
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
                pass

    async def _command(self) -> None:
        try:
            line = await self._readline(idle=True)
        except SMTPError as e:
            # A line that is not UTF-8: answered like any bad command, the
            # connection goes on (the line is already consumed).
            self._command_error(e)
            return
        if self._shutting_down:
            self._reply(Reply(421, "4.3.2", "shutting down", with_id=False))
            raise _Close
        verb, args = split_command(line)
        fn = self._commands.get(verb)
        try:
            if fn is None:
                if self._ncmds == 0:
                    # Probably not SMTP at all; more junk lines would follow.
                    self._reply(
                        Reply(500, "5.5.2", "please try again speaking smtp", with_id=False)
                    )
                    raise _Close
                raise error(500, "5.5.1", "unknown command")
            self._ncmds += 1
            await fn(args)
        except SMTPError as e:
            self._command_error(e)

    def _command_error(self, e: SMTPError) -> None:
        """Answer a failed command; close after a 421 or too many errors."""
        self._errors += 1
        self._reply(e.reply)
        if e.close or e.reply.code == 421:
            raise _Close from None
        if self._errors >= self.config.max_errors:
            self._reply(Reply(421, "4.7.0", "too many errors, closing connection", with_id=False))
            raise _Close from None

    # -- I/O ---------------------------------------------------------------------

    def _reply(self, reply: Reply) -> None:
        self._out += reply.render(self.info.conn_id)

    def _reply_lines(self, code: int, lines: list[str]) -> None:
        for i, line in enumerate(lines):
            sep = "-" if i < len(lines) - 1 else " "
            self._out += f"{code}{sep}{line}\r\n".encode()

    async def _flush(self) -> None:
        if not self._out:
            return
        data = bytes(self._out)
        self._out.clear()
        trace_write(log, data)
        # trio.fail_after, without its generator context manager (every reply comes here).
        with trio.CancelScope(deadline=trio.current_time() + self.config.write_timeout) as scope:
            await self.stream.send_all(data)
        if scope.cancelled_caught:
            raise trio.TooSlowError

    async def _recv_some(self, idle: bool) -> bytes:
        """Receive data after flushing replies; ``idle``: between commands."""
        await self._flush()
        if idle and self._shutting_down:
            return b""
        deadline = trio.current_time() + self.config.idle_timeout
        if self._data_deadline is not None:
            deadline = min(deadline, self._data_deadline)
        with trio.CancelScope(deadline=deadline) as scope:
            if idle:
                self._idle_scope = scope
            try:
                data = await self.stream.receive_some(RECEIVE_SIZE)
            finally:
                self._idle_scope = None
        if scope.cancelled_caught:
            if self._shutting_down and idle:
                return b""
            raise trio.TooSlowError
        if not data:
            raise _Close
        return bytes(data)

    async def _readline(self, idle: bool = False) -> str:
        """One line without its CRLF (or bare LF, accepted like mox)."""
        limit = self.config.max_line_length
        while True:
            i = self._buf.find(b"\n")
            if i >= 0 and i + 1 <= limit:
                raw = bytes(self._buf[:i])
                del self._buf[: i + 1]
                if raw.endswith(b"\r"):
                    raw = raw[:-1]
                trace_read(log, raw, auth=not idle)
                try:
                    return raw.decode("utf-8")
                except UnicodeDecodeError:
                    raise error(500, "5.5.2", "invalid utf-8 in command line") from None
            if i >= 0 or len(self._buf) >= limit:
                self._reply(
                    Reply(
                        500,
                        "5.5.0",
                        f"line too long, smtp max is 512, we reached {limit}",
                        with_id=False,
                    )
                )
                raise _Close
            data = await self._recv_some(idle and not self._buf)
            if not data:  # Shutdown while idle.
                self._reply(Reply(421, "4.3.2", "shutting down", with_id=False))
                raise _Close
            self._buf += data

    async def _ask(
        self, what: str, fn: Callable[..., Awaitable[Any]], *args: Any, expect: type = Reply
    ) -> Any:
        """Call the handler; its failures answer 451 4.3.0 (fail closed) and are logged."""
        try:
            result = await fn(*args)
        except (trio.Cancelled, _Close):
            raise
        except Exception:
            log.exception("smtp handler %s failed, conn %s", what, self.info.conn_id)
            raise error(451, "4.3.0", "error processing") from None
        if result is not None and not isinstance(result, expect):
            log.error(
                "smtp handler %s returned %r, not a %s, conn %s",
                what,
                result,
                expect.__name__,
                self.info.conn_id,
            )
            raise error(451, "4.3.0", "error processing")
        return result

    def _handler_reply(self, reply: Reply) -> None:
        self._reply(reply)
        if reply.code == 421:
            raise _Close

    # -- state helpers -----------------------------------------------------------

    def _rset(self) -> None:
        self._envelope = None

    def _reset(self) -> None:
        """Back to just-greeted state (after STARTTLS, RFC 3207)."""
        self._hello = False
        self.info.ehlo_name = ""
        self.info.is_ehlo = False
        self.info.account = ""
        self.info.username = ""
        self._rset()

    def _need_hello(self) -> None:
        if not self._hello:
            raise error(503, "5.5.1", "no ehlo/helo yet")

    def _check_auth(self) -> None:
        if self.submission and not self.info.account:
            raise error(530, "5.7.0", "authentication required")

    # -- commands ----------------------------------------------------------------

    async def _cmd_helo(self, args: str) -> None:
        await self._hello_cmd(args, ehlo=False)

    async def _cmd_ehlo(self, args: str) -> None:
        await self._hello_cmd(args, ehlo=True)

    async def _hello_cmd(self, args: str, ehlo: bool) -> None:
        if self.submission and not self.config.pedantic:
            # Mail clients send all kinds of bogus names; for submission the
            # value is of no use, so (like mox) we don't bother the user.
            name = f"[{self.info.remote_ip}]"
        else:
            name = parse_hello(args, ehlo, strict_end=self.submission)
        self._rset()
        self._hello = True
        self.info.ehlo_name = name
        self.info.is_ehlo = ehlo
        self._reply_lines(250, self.ehlo_lines())

    def ehlo_lines(self) -> list[str]:
        """The EHLO reply lines (without ``250-``) for the current state."""
        c = self.config
        lines = [c.hostname, "PIPELINING", f"SIZE {c.max_message_size}"]
        if not self.info.tls and c.ssl_context is not None:
            lines.append("STARTTLS")
        elif self.info.tls and c.requiretls_enabled:
            lines.append("REQUIRETLS")
        if self.submission:
            if self.info.tls or not c.require_tls_for_auth:
                plus = self.info.tls and self._binding_offered()
                lines.append("AUTH " + (MECHANISMS_PLUS if plus else MECHANISMS))
            t = datetime.now(UTC) + timedelta(seconds=FUTURE_RELEASE_MAX_SECONDS)
            lines.append(
                f"FUTURERELEASE {FUTURE_RELEASE_MAX_SECONDS} {t.strftime('%Y-%m-%dT%H:%M:%SZ')}"
            )
        lines += ["ENHANCEDSTATUSCODES", "8BITMIME", f"LIMITS RCPTMAX={RCPT_MAX}", "SMTPUTF8"]
        return lines

    async def _cmd_starttls(self, args: str) -> None:
        self._need_hello()
        parse_no_args(args, strict_end=self.submission)
        if self.info.tls:
            raise error(503, "5.5.1", "already speaking tls")
        if self.info.account:
            raise error(503, "5.5.1", "cannot starttls after authentication")
        ctx = self.config.ssl_context
        if ctx is None:
            raise error(502, "5.5.1", "starttls not available")
        self._reply(Reply(220, "2.0.0", "go!", with_id=True))
        await self._flush()
        prefix = bytes(self._buf)
        self._buf.clear()
        transport: trio.abc.Stream = PrefixStream(self.stream, prefix) if prefix else self.stream
        tls_stream = trio.SSLStream(transport, ctx, server_side=True)
        self.stream = tls_stream
        try:
            with trio.fail_after(self.config.tls_handshake_timeout):
                await tls_stream.do_handshake()
        except (trio.BrokenResourceError, trio.TooSlowError) as e:
            log.info("starttls handshake failed: %r, conn %s", e.__cause__ or e, self.info.conn_id)
            raise _Close from None
        self._reset()
        self.info.tls = True
        self.info.tls_version = str(tls_stream.version() or "")
        cipher = tls_stream.cipher()
        self.info.tls_cipher = cipher[0] if cipher else ""

    # -- AUTH --------------------------------------------------------------------

    def _ssl_object(self) -> ssl.SSLObject | None:
        """The TLS connection's ssl object (for channel binding), if any."""
        if not self.info.tls:
            return None
        obj = getattr(self.stream, "_ssl_object", None)  # trio.SSLStream keeps it here.
        return obj if isinstance(obj, ssl.SSLObject) else None

    def _binding_offered(self) -> bool:
        """Whether -PLUS mechanisms are offered on this TLS connection (checked once)."""
        if self._binding is None:
            self._binding = tlsbinding.available(self._ssl_object())
        return self._binding

    async def _cmd_auth(self, args: str) -> None:
        self._need_hello()
        if not self.submission:
            raise error(503, "5.5.1", "authentication only allowed on submission ports")
        if self.info.account:
            raise error(503, "5.5.1", "already authenticated")
        if self._envelope is not None:
            raise error(503, "5.5.1", "authentication not allowed during mail transaction")
        # Slow down password guessing on this connection (mox: RFC 4954 section 9).
        if self._auth_failed > 3 and self.config.auth_fail_delay > 0:
            await trio.sleep((self._auth_failed - 3) * self.config.auth_fail_delay)
        self._auth_failed += 1
        outcome = AuthOutcome()
        io = AuthIO(
            info=self.info,
            readline=self._readline,
            write=self._out.extend,
            lookup_login=self._lookup_login,
            ssl_object=self._ssl_object(),
            binding_offered=self.info.tls and self._binding_offered(),
            require_tls_for_auth=self.config.require_tls_for_auth,
            limiter=self.auth_limiter,
            decoy_key=self.config.decoy_key,
        )
        command = AuthCommand(io, args, outcome)
        command.check_limit()
        try:
            await command.run()
        finally:
            lim = self.auth_limiter
            if outcome.ok:
                self._auth_failed = 0
                if lim is not None:
                    lim.succeeded(self.info.remote_ip, outcome.account)
            elif not outcome.counted:
                self._auth_failed -= 1
            elif lim is not None:
                lim.failed(self.info.remote_ip, outcome.account)

    async def _lookup_login(self, username: str) -> LoginInfo | None:
        info: LoginInfo | None = await self._ask(
            "lookup_login", self.handler.lookup_login, username, expect=LoginInfo
        )
        return info

    # -- mail transaction --------------------------------------------------------

    async def _cmd_mail(self, args: str) -> None:
        if self._tx_bad > 10 and self._tx_good == 0:
            # Probably someone guessing addresses.
            self._reply(Reply(550, "5.1.0", "too many failures", with_id=False))
            raise _Close
        self._need_hello()
        self._check_auth()
        if self._envelope is not None:
            raise error(503, "5.5.1", "already have MAIL")
        ctx = MailContext(
            submission=self.submission,
            tls=self.info.tls,
            requiretls_enabled=self.config.requiretls_enabled,
            max_message_size=self.config.max_message_size,
            pedantic=self.config.pedantic,
        )
        path, params = parse_mail(args, ctx)
        if path.ip is not None:
            if self.submission:
                raise error(550, "5.7.1", "must match authenticated user")
            raise error(550, "5.7.0", "domain name required")
        env = Envelope(
            mail_from=path,
            size=params.size,
            body=params.body,
            smtputf8=params.smtputf8,
            requiretls=params.requiretls,
            future_release=params.future_release,
            future_release_request=params.future_release_request,
        )
        reply = await self._ask("check_mail_from", self.handler.check_mail_from, self.info, env)
        if reply is not None:
            self._handler_reply(reply)
            return
        self._envelope = env
        self._reply(Reply(250, "2.1.0", "looking good"))

    async def _cmd_rcpt(self, args: str) -> None:
        self._need_hello()
        self._check_auth()
        env = self._envelope
        if env is None:
            raise error(503, "5.5.1", "missing MAIL FROM")
        path = parse_rcpt(
            args, smtputf8=env.smtputf8, submission=self.submission, pedantic=self.config.pedantic
        )
        if self.config.require_tls_for_delivery and not self.info.tls:
            raise error(530, "5.7.0", "STARTTLS required for mail delivery")
        if len(env.recipients) >= RCPT_MAX:
            raise error(452, "4.5.3", f"max of {RCPT_MAX} recipients reached")
        if not self.submission and env.recipients and env.mail_from.is_null:
            raise error(452, "4.5.3", "only one recipient allowed with null reverse address")
        if path.ip is not None and not self.submission:
            raise error(550, "5.1.1", "not accepting email for ip")
        reply = await self._ask("check_rcpt", self.handler.check_rcpt, self.info, env, path)
        if reply is not None:
            self._handler_reply(reply)
            return
        env.recipients.append(path)
        self._reply(Reply(250, "2.1.0", "now on the list"))

    async def _cmd_data(self, args: str) -> None:
        self._need_hello()
        self._check_auth()
        env = self._envelope
        if env is None:
            raise error(503, "5.5.1", "missing MAIL FROM")
        if not env.recipients:
            raise error(503, "5.5.1", "missing RCPT TO")
        parse_no_args(args, strict_end=self.submission)
        self._tx_bad += 1  # Compensated on success.
        path = ""
        try:
            self._data_deadline = trio.current_time() + self.config.data_timeout
            self._out += b"354 see you at the bare dot\r\n"
            path, decoder, written, write_failed, data = await self._receive_data()
            self._data_deadline = None
            self._rset()
            if write_failed:
                raise error(451, "4.3.0", "error copying data to file")
            if decoder.bad_crlf:
                raise error(500, "5.5.2", "invalid bare \\r or \\n, may be smtp smuggling")
            if decoder.has_nul and self.config.pedantic:
                # mox in pedantic mode refuses a message it cannot parse fully,
                # with this reply shape; NUL is not allowed anywhere in a message.
                raise error(554, "5.6.0", "malformed message: nul byte in message")
            if self.submission and not decoder.have_body:
                raise error(554, "5.6.0", "message requires both header and body section")
            msg = ReceivedMessage(path, written, decoder.has_8bit, decoder.have_body, data)
            reply = await self._ask("deliver", self.handler.deliver, self.info, env, msg)
            if reply is None:
                log.error("smtp handler deliver returned None, conn %s", self.info.conn_id)
                raise error(451, "4.3.0", "error processing")
            if reply.is_success:
                self._tx_good += 1
                self._tx_bad -= 1
            self._handler_reply(reply)
        finally:
            self._data_deadline = None
            self._rset()
            if path:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_remove_quietly, path)

    async def _receive_data(self) -> tuple[str, DataDecoder, int, bool, bytes | None]:
        """Read DATA: (path, decoder, bytes written, write failed, data).

        On a submission listener a message that ends before ``WRITE_BATCH``
        bytes stays in memory (``data``; ``path`` empty): no worker-thread
        trips to create, write, close and later remove a spool file. A larger
        one, and every message on the delivery listener, is streamed to a
        temp file (``path``; ``data`` None).
        """
        f: Any = None
        path = ""

        async def open_spool() -> None:
            nonlocal f, path
            fd, path = await trio.to_thread.run_sync(
                lambda: tempfile.mkstemp(prefix="smtp-data-", dir=self.config.tmp_dir)
            )
            f = os.fdopen(fd, "wb", buffering=0)

        if not self.submission:
            await open_spool()
        decoder = DataDecoder()
        pending: list[bytes] = []
        pending_size = 0
        written = 0
        write_failed = False
        max_size = self.config.max_message_size

        async def write_pending() -> None:
            nonlocal pending, pending_size, written, write_failed
            if not pending:
                return
            if f is None:
                await open_spool()
            chunk = b"".join(pending)
            pending, pending_size = [], 0
            if write_failed:
                return
            try:
                await trio.to_thread.run_sync(f.write, chunk)
                written += len(chunk)
            except OSError:
                log.exception("writing message data to %s, conn %s", path, self.info.conn_id)
                write_failed = True

        try:
            data = bytes(self._buf)
            self._buf.clear()
            while True:
                if data:
                    mlog.trace(log, mlog.TRACEDATA, "RD: ", data)
                    out, used = decoder.feed(data)
                    if decoder.done:
                        self._buf += data[used:]
                    if decoder.size > max_size:
                        ecode = "4.2.3" if max_size < DEFAULT_MAX_MESSAGE_SIZE else "4.3.4"
                        self._reply(Reply(451, ecode, "error copying data to file"))
                        raise _Close
                    if out:
                        pending.append(out)
                        pending_size += len(out)
                    if pending_size >= WRITE_BATCH:
                        await write_pending()
                if decoder.done:
                    break
                data = await self._recv_some(idle=False)
            if f is None:
                whole = b"".join(pending)
                return "", decoder, len(whole), False, whole
            await write_pending()
        except BaseException:
            if f is not None:
                with trio.CancelScope(shield=True):
                    await trio.to_thread.run_sync(_close_and_remove, f, path)
            raise
        await trio.to_thread.run_sync(f.close)
        return path, decoder, written, write_failed, None

    async def _cmd_bdat(self, args: str) -> None:
        raise error(502, "5.5.1", "command not implemented")

    async def _cmd_rset(self, args: str) -> None:
        parse_no_args(args, strict_end=self.submission)
        self._rset()
        self._reply(Reply(250, "2.0.0", "all clear"))

    async def _cmd_vrfy(self, args: str) -> None:
        parse_vrfy(args, strict_end=self.submission)
        self._reply(Reply(252, "2.7.0", "no verify but will try delivery", with_id=True))

    async def _cmd_expn(self, args: str) -> None:
        parse_vrfy(args, strict_end=self.submission)
        self._reply(Reply(252, "2.7.0", "no expand but will try delivery", with_id=True))

    async def _cmd_help(self, args: str) -> None:
        self._reply(Reply(214, "2.0.0", "see rfc 5321 (smtp)"))

    async def _cmd_noop(self, args: str) -> None:
        parse_noop(args, strict_end=self.submission)
        self._reply(Reply(250, "2.0.0", "alrighty"))

    async def _cmd_quit(self, args: str) -> None:
        parse_no_args(args, strict_end=self.submission)
        self._reply(Reply(221, "2.0.0", "okay thanks bye"))
        raise _Close


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:
        log.exception("removing temporary message file %s", path)


def _close_and_remove(f: Any, path: str) -> None:
    try:
        f.close()
    except OSError:
        pass
    _remove_quietly(path)
