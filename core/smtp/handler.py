"""The seam between the SMTP protocol layer and the rest of the server.

The session (``core.smtp.session``) speaks SMTP and knows nothing about
accounts, storage or config files; everything that needs them goes through a
:class:`SessionHandler`, one instance per connection. The core implements it
on top of the store, queue and config; tests use :class:`MemoryHandler`.
"""

from __future__ import annotations

import hmac
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

import trio

from core.passwords import derive_cram_md5, derive_scram
from core.smtp.parser import Path
from core.smtp.reply import Reply
from core.store.models import CramMD5Secret, ScramCredentials

ListenerKind = Literal["smtp", "submission", "submissions"]


@dataclass(frozen=True)
class LoginInfo:
    """What AUTH needs to know about a login address.

    ``scram`` holds the account's SCRAM-SHA-256 credentials; PLAIN and LOGIN
    passwords are checked against the same credentials (no plaintext or
    bcrypt needed here). ``scram_sha1`` and ``cram_md5`` serve those
    mechanisms. ``login_disabled`` is the account's LoginDisabled message;
    non-empty refuses the login after a correct password. A secret that is
    None was never derived (no password, or set before the mechanism was
    supported; mox: "scram not possible"; such attempts don't count as
    failures).
    """

    account: str
    scram: ScramCredentials | None
    login_disabled: str = ""
    scram_sha1: ScramCredentials | None = None
    cram_md5: CramMD5Secret | None = None


@dataclass
class SessionInfo:
    """Connection facts, updated by the session as they change (EHLO, TLS, AUTH)."""

    conn_id: str
    listener_kind: ListenerKind
    hostname: str
    remote_ip: str
    remote_port: int
    local_ip: str
    local_port: int
    tls: bool = False
    tls_version: str = ""
    tls_cipher: str = ""
    ehlo_name: str = ""  # Name or "[ip]" from EHLO/HELO (remote IP on lenient submission).
    is_ehlo: bool = False
    account: str = ""  # Set after successful AUTH.
    username: str = ""  # Login address exactly as given in AUTH.

    @property
    def submission(self) -> bool:
        return self.listener_kind != "smtp"


@dataclass
class Envelope:
    """One mail transaction: MAIL FROM, its parameters, and accepted recipients."""

    mail_from: Path
    size: int | None = None  # SIZE= as claimed by the client.
    body: str | None = None  # BODY=7BIT|8BITMIME.
    smtputf8: bool = False
    requiretls: bool = False
    future_release: datetime | None = None  # HOLDFOR/HOLDUNTIL -> queue NextAttempt.
    future_release_request: str = ""  # "for;<n>" or "until;<value as given>".
    recipients: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class ReceivedMessage:
    """The message data of a DATA command: in memory or on disk.

    The dot-unstuffed message (CRLF line endings) is either ``data`` (a
    small message on a submission listener; ``path`` is then empty) or a
    temporary file at ``path`` (``data`` None). The handler may rename/link
    the file elsewhere; the session removes it after
    :meth:`SessionHandler.deliver` returns if it still exists.
    """

    path: str
    size: int  # Bytes of the message.
    has_8bit: bool  # Any byte >= 0x80 seen.
    have_body: bool  # The header/body separating empty line was present.
    data: bytes | None = None


@runtime_checkable
class SessionHandler(Protocol):
    """Storage/config-side decisions for one SMTP connection.

    Every async method may raise; the session logs it and answers
    ``451 4.3.0`` (fail closed). A returned Reply with code 421 also closes
    the connection after it is sent.
    """

    listener_kind: ListenerKind

    async def lookup_login(self, username: str) -> LoginInfo | None:
        """Resolve a login address (as given, NFC-normalised) to an account, or None."""
        ...

    async def check_mail_from(self, info: SessionInfo, envelope: Envelope) -> Reply | None:
        """MAIL FROM passed syntax/protocol checks (``envelope.mail_from`` and params set,
        no recipients yet). None accepts; a Reply refuses (the transaction is reset)."""
        ...

    async def check_rcpt(
        self, info: SessionInfo, envelope: Envelope, address: Path
    ) -> Reply | None:
        """RCPT TO passed protocol checks. None accepts and the session appends it."""
        ...

    async def deliver(
        self, info: SessionInfo, envelope: Envelope, message: ReceivedMessage
    ) -> Reply:
        """The complete message: store/queue it durably, then return the reply to send."""
        ...


class MemoryHandler:
    """In-memory handler for tests and examples.

    Logins are given with plaintext passwords (SCRAM credentials are derived
    once); delivered messages are kept in :attr:`delivered`.
    """

    def __init__(
        self,
        listener_kind: ListenerKind = "smtp",
        *,
        logins: dict[str, tuple[str, str]] | None = None,
        disabled: dict[str, str] | None = None,
        iterations: int = 4096,
        allowed_senders: dict[str, set[str]] | None = None,
        rejected_rcpts: dict[str, Reply] | None = None,
        deliver_reply: Reply | None = None,
    ) -> None:
        self.listener_kind: ListenerKind = listener_kind
        self._logins: dict[str, LoginInfo] = {}
        salt = os.urandom(16)
        for username, (account, password) in (logins or {}).items():
            msg = (disabled or {}).get(account, "")
            self._logins[username] = LoginInfo(
                account,
                derive_scram(password, "sha256", iterations, salt),
                msg,
                scram_sha1=derive_scram(password, "sha1", iterations, salt),
                cram_md5=derive_cram_md5(password),
            )
        self.allowed_senders = allowed_senders
        self.rejected_rcpts = rejected_rcpts or {}
        self.deliver_reply = deliver_reply or Reply(250, "2.0.0", "it is done")
        self.delivered: list[tuple[Envelope, bytes, ReceivedMessage]] = []
        self.login_lookups: list[str] = []

    async def lookup_login(self, username: str) -> LoginInfo | None:
        self.login_lookups.append(username)
        for name, info in self._logins.items():
            if hmac.compare_digest(name.encode(), username.encode()):
                return info
        return None

    async def check_mail_from(self, info: SessionInfo, envelope: Envelope) -> Reply | None:
        if info.submission and self.allowed_senders is not None and not envelope.mail_from.is_null:
            allowed = self.allowed_senders.get(info.account, set())
            if str(envelope.mail_from) not in allowed:
                return Reply(550, "5.7.1", "must match authenticated user")
        return None

    async def check_rcpt(
        self, info: SessionInfo, envelope: Envelope, address: Path
    ) -> Reply | None:
        return self.rejected_rcpts.get(str(address))

    async def deliver(
        self, info: SessionInfo, envelope: Envelope, message: ReceivedMessage
    ) -> Reply:
        def read() -> bytes:
            with open(message.path, "rb") as f:
                return f.read()

        data = message.data if message.data is not None else await trio.to_thread.run_sync(read)
        self.delivered.append((envelope, data, message))
        return self.deliver_reply
