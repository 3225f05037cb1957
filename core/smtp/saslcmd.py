"""The SMTP AUTH command: one SASL exchange per command, with mox's replies.

Mechanisms (as mox): SCRAM-SHA-256(-PLUS), SCRAM-SHA-1(-PLUS), CRAM-MD5,
PLAIN and LOGIN. PLAIN and LOGIN need TLS unless the listener allows
plaintext auth; SCRAM and CRAM-MD5 never put the password on the wire.

Every attempt is checked against the server's failed-login limiter before it
starts and again once the user name is known (``421 4.7.0`` and the
connection closes when over the limit); the outcome feeds the limiter: a
failure counts for the IP and the target account, a success forgives only
that account's failures from this IP.
"""

from __future__ import annotations

import base64
import hmac
import logging
import secrets
import ssl
import time
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from core.loginlimit import LoginLimiter
from core.passwords import cram_md5_digest, verify_password, verify_password_dummy
from core.smtp.auth import (
    SCRAM_MECHANISMS,
    SaslError,
    ScramChannelBindingError,
    ScramProofError,
    ScramServer,
    decoy_credentials,
)
from core.smtp.handler import LoginInfo, SessionInfo
from core.smtp.observe import auth_failure
from core.smtp.parser import decode_sasl_base64, parse_auth
from core.smtp.reply import Reply, error
from core.tlsbinding import ChannelBindingUnavailable, channel_binding

log = logging.getLogger("moxtrio.smtp")

MECHANISMS = "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"
MECHANISMS_PLUS = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"


@dataclass
class AuthOutcome:
    """How one AUTH command ended, for the failed-login limiter.

    ``account`` is the target account once the user name resolved to one;
    ``counted`` is False for attempts that are no guess (refused by the
    limiter itself, or an account without the secrets a mechanism needs).
    """

    ok: bool = False
    counted: bool = True
    account: str = ""


@dataclass
class AuthIO:
    """What the exchange needs from its session."""

    info: SessionInfo
    readline: Callable[[], Awaitable[str]]
    write: Callable[[bytes], None]  # Buffered, flushed before the next read.
    lookup_login: Callable[[str], Awaitable[LoginInfo | None]]
    ssl_object: ssl.SSLObject | None
    binding_offered: bool
    require_tls_for_auth: bool
    limiter: LoginLimiter | None
    decoy_key: bytes


class AuthCommand:
    """One AUTH command; :meth:`run` answers 235 or raises an SMTPError."""

    def __init__(self, io: AuthIO, args: str, outcome: AuthOutcome) -> None:
        self.io = io
        self.info = io.info
        self.args = args
        self.outcome = outcome
        self.mech, self.initial = parse_auth(args)

    # -- limiter ------------------------------------------------------------------

    def check_limit(self, account: str = "") -> None:
        """Refuse (421, close) when this IP or the target account used up its budget."""
        self.outcome.account = account
        lim = self.io.limiter
        if lim is None or lim.allowed(self.info.remote_ip, account):
            return
        self.outcome.counted = False
        log.info("refusing smtp auth from %s: too many auth failures", self.info.remote_ip)
        raise error(421, "4.7.0", "too many auth failures", close=True)

    # -- I/O helpers -----------------------------------------------------------------

    def _challenge(self, data: bytes) -> None:
        self.io.write(b"334 " + base64.b64encode(data) + b"\r\n")

    async def _response(self) -> bytes:
        line = await self.io.readline()
        if line == "*":
            raise error(501, "5.5.0", "authentication aborted")
        return decode_sasl_base64(line)

    async def _initial(self, challenge: bytes) -> bytes:
        if self.initial is None:
            self._challenge(challenge)
            return await self._response()
        return decode_sasl_base64(self.initial)

    @staticmethod
    def _text(b: bytes, what: str) -> str:
        try:
            return b.decode("utf-8")
        except UnicodeDecodeError:
            raise error(501, "5.5.2", f"invalid utf-8 in {what}") from None

    def _need_tls(self) -> None:
        if not self.info.tls and self.io.require_tls_for_auth:
            raise error(538, "5.7.11", "authentication requires tls")

    def _failed(self, username: str, text: str = "bad user/pass") -> Exception:
        log.info("authentication failed", extra=auth_failure(self.info, self.mech.lower(), username))
        return error(535, "5.7.8", text)

    # -- mechanisms ------------------------------------------------------------------

    async def run(self) -> None:
        mech = self.mech
        if mech == "PLAIN":
            info, username = await self._plain()
        elif mech == "LOGIN":
            info, username = await self._login()
        elif mech == "CRAM-MD5":
            info, username = await self._cram_md5()
        elif mech in SCRAM_MECHANISMS:
            info, username = await self._scram()
        else:
            raise error(504, "5.5.4", f"mechanism {mech} not supported")
        if info.login_disabled:
            raise error(525, "5.7.13", f"login is disabled for this account: {info.login_disabled}")
        self.outcome.ok = True
        self.outcome.account = info.account
        self.info.account = info.account
        self.info.username = username
        self.io.write(Reply(235, "2.7.0", "nice").render(self.info.conn_id))

    async def _plain(self) -> tuple[LoginInfo, str]:
        self._need_tls()
        parts = (await self._initial(b"")).split(b"\0")
        if len(parts) != 3:
            raise error(501, "5.5.4", f"auth data should have 3 nul-separated tokens, got {len(parts)}")
        authz = unicodedata.normalize("NFC", self._text(parts[0], "authorization id"))
        authc = unicodedata.normalize("NFC", self._text(parts[1], "username"))
        password = self._text(parts[2], "password")
        if authz and authz != authc:
            raise error(535, "5.7.8", "cannot assume other role")
        return await self._check_password(authc, password), authc

    async def _login(self) -> tuple[LoginInfo, str]:
        self._need_tls()
        # mox (like most servers) prompts "Username:" and "Password:".
        username = unicodedata.normalize("NFC", self._text(await self._initial(b"Username:"), "username"))
        self._challenge(b"Password:")
        password = self._text(await self._response(), "password")
        return await self._check_password(username, password), username

    async def _check_password(self, username: str, password: str) -> LoginInfo:
        info = await self.io.lookup_login(username)
        if info is not None:
            self.check_limit(info.account)
        if info is None or info.scram is None:
            await trio.to_thread.run_sync(verify_password_dummy, password)
            raise self._failed(username)
        if not await trio.to_thread.run_sync(verify_password, password, info.scram):
            raise self._failed(username)
        return info

    async def _cram_md5(self) -> tuple[LoginInfo, str]:
        if self.initial is not None:
            raise error(501, "5.5.4", "no initial response allowed with cram-md5")
        # RFC 2195: a unique msg-id-like challenge, as mox makes it.
        host = self.info.hostname
        challenge = f"<{secrets.randbits(63)}.{time.time_ns()}@{host}>".encode()
        self._challenge(challenge)
        resp = self._text(await self._response(), "cram-md5 response").split(" ")
        if len(resp) != 2 or len(resp[1]) != 32:
            raise error(501, "5.5.4", "malformed cram-md5 response")
        username = unicodedata.normalize("NFC", resp[0])
        info = await self.io.lookup_login(username)
        if info is None:
            raise self._failed(username)
        self.check_limit(info.account)
        if info.cram_md5 is None:
            log.info("cram-md5 auth attempt for %r without derived secrets, set the password again", username)
            self.outcome.counted = False
            raise self._failed(username)
        want = cram_md5_digest(info.cram_md5, challenge)
        if not hmac.compare_digest(want.encode(), resp[1].lower().encode()):
            raise self._failed(username)
        return info, username

    def _binding(self, name: str) -> bytes:
        obj = self.io.ssl_object
        if obj is None:
            raise ScramChannelBindingError("no tls connection")
        try:
            return channel_binding(obj, name)
        except ChannelBindingUnavailable as exc:
            raise ScramChannelBindingError(str(exc)) from None

    async def _scram(self) -> tuple[LoginInfo, str]:
        hash_name, plus = SCRAM_MECHANISMS[self.mech]
        if plus and not self.info.tls:
            raise error(538, "5.7.11", "scram plus mechanism requires tls connection")
        try:
            server = ScramServer(
                await self._initial(b""),
                hash_name,
                plus=plus,
                binding=self._binding if self.io.ssl_object is not None else None,
                binding_offered=self.io.binding_offered,
            )
        except SaslError as e:
            raise error(501, "5.5.2", f"scram: {e}") from None
        username = server.authentication
        info = await self.io.lookup_login(username)
        if info is not None:
            self.check_limit(info.account)
        creds = None
        if info is not None:
            creds = info.scram_sha1 if hash_name == "sha1" else info.scram
            if creds is None:
                log.info("scram auth attempt for %r without derived secrets, set the password again", username)
                self.outcome.counted = False
                raise error(454, "4.3.0", "scram not possible")
        if server.authorization and server.authorization != username:
            raise error(535, "5.7.8", "authentication with authorization for different user not supported")
        if creds is None:
            creds = decoy_credentials(self.io.decoy_key, hash_name, username)
        self._challenge(server.server_first(creds).encode())
        client_final = await self._response()
        try:
            final = server.finish(client_final, creds)
        except ScramProofError:
            self._challenge(b"e=invalid-proof")
            await self.io.readline()  # Client should answer "*".
            raise self._failed(username, "bad credentials") from None
        except ScramChannelBindingError:
            self._challenge(b"e=channel-bindings-dont-match")
            await self.io.readline()
            log.warning("bad channel binding during authentication for %r from %s, potential mitm",
                        username, self.info.remote_ip)
            raise error(535, "5.7.7", "channel bindings do not match, potential mitm") from None
        except SaslError as e:
            self._challenge(b"e=other-error")
            await self.io.readline()
            raise error(501, "5.5.2", f"scram: {e}") from None
        self._challenge(final.encode())
        await self._response()  # Empty final client response.
        if info is None:  # Decoy credentials cannot verify; never trust them anyway.
            raise self._failed(username, "bad credentials")
        return info, username

