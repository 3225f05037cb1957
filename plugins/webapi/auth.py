"""HTTP Basic authentication for the webapi, with the shared failed-login limiter.

The user name is an email address (the login address, remembered as given
for Send's default From and for FromIDLoginAddresses), the password the
account's. Failed attempts count in the server's failed-login limiter
(``ctx.login_limiter``) that SMTP AUTH uses too, so password guessing over
either protocol is throttled together.

Verifying a password costs a PBKDF2 derivation (SCRAM-SHA-256, 4096+
rounds), several milliseconds of CPU: at hundreds of requests per second
that would be the server's main cost. So a successful check is remembered
as a MAC (keyed BLAKE2b) of the password under a per-process random key,
filed under the account *and its current StoredKey*: a password change gives a new salt and
StoredKey, so old entries simply stop matching (nothing to invalidate), and
the cache never holds anything that reveals the password.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import logging
import secrets
from dataclasses import dataclass

import trio

from core.loginlimit import LoginLimiter
from core.memo import memoize_short
from core.passwords import verify_password
from core.store.accounts import get_scram_credentials
from core.store.models import ScramCredentials
from core.store.sql import Connection
from core.submit import sent_past_day
from moxtrio import PluginContext
from plugins.webapi.errors import WebapiError

log = logging.getLogger("moxtrio.webapi.auth")

UNAUTHORIZED = "401 - unauthorized - use http basic auth with email address as username"
LOGIN_DISABLED = "401 - unauthorized - login is disabled for this account"
TOO_MANY = "429 - too many auth attempts"
NO_REMOTE_IP = "500 - internal server error - cannot find remote ip"

#: Bound on remembered (account, password) checks; cleared when full.
CACHE_MAX = 4096

_DUMMY = ScramCredentials(
    salt=b"moxtrio-webapi-dummy", iterations=4096, stored_key=b"\0" * 32, server_key=b""
)


class HTTPAuthError(Exception):
    """A plain-text HTTP error answer (401, 429, 500) from the auth step."""

    def __init__(self, status: int, body: str, *, challenge: bool = False) -> None:
        super().__init__(body)
        self.status = status
        self.body = body
        self.challenge = challenge


@dataclass(frozen=True)
class Login:
    """An authenticated request: the account and the login address exactly as given."""

    account: str
    address: str
    remote_ip: str
    #: The account's messages of the past 24 hours, counted in the credentials
    #: read when asked (Send: its daily limit check then needs no read of its own).
    sent_past_day: int | None = None


def parse_basic(header: str) -> tuple[str, str] | None:
    """(username, password) from an ``Authorization: Basic`` header, or None (Go's BasicAuth)."""
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, sep, password = raw.partition(b":")
    if not sep:
        return None
    return user.decode("utf-8", "replace"), password.decode("utf-8", "replace")


def client_ip(peer: str | None, forwarded_for: str | None, forwarded: bool) -> str:
    """The IP the limiter counts: X-Forwarded-For's first entry behind a proxy, else the peer."""
    raw = (forwarded_for or "").split(",")[0].strip() if forwarded else (peer or "")
    try:
        return _normal_ip(raw)
    except ValueError:
        raise HTTPAuthError(500, NO_REMOTE_IP) from None


@memoize_short(64)
def _normal_ip(raw: str) -> str:
    """An IP address in its normal text form (memoized: clients come back; errors not kept)."""
    return str(ipaddress.ip_address(raw))


class Authenticator:
    """Checks Basic credentials for one server (one per webapi plugin context)."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx
        self._secret = secrets.token_bytes(32)
        self._verified: dict[tuple[str, bytes], bytes] = {}
        self.pbkdf2_runs = 0

    @property
    def limiter(self) -> LoginLimiter:
        """The server's failed-login limiter, shared with SMTP AUTH."""
        return self.ctx.login_limiter

    def _tag(self, password: str) -> bytes:
        # Keyed BLAKE2b is a MAC like HMAC-SHA256, and for short input it keeps
        # the GIL: OpenSSL's one-shot HMAC releases it, and getting it back
        # while the store's threads run costs the event loop far more than the hash.
        return hashlib.blake2b(password.encode("utf-8", "surrogatepass"), key=self._secret).digest()

    async def _verify(self, account: str | None, password: str, count_sent: bool = False) -> tuple[bool, int | None]:
        """Whether the password is the account's; with ``count_sent``, also
        :func:`sent_past_day` from the same read."""
        if account is None:
            await trio.to_thread.run_sync(verify_password, password, _DUMMY)
            return False, None

        def read(conn: Connection) -> tuple[ScramCredentials | None, int | None]:
            creds = get_scram_credentials(conn, account)
            return creds, sent_past_day(conn, account) if count_sent and creds is not None else None

        creds, sent = await self.ctx.store.read(read)
        if creds is None:
            await trio.to_thread.run_sync(verify_password, password, _DUMMY)
            return False, None
        key = (account, creds.stored_key)
        tag = self._tag(password)
        known = self._verified.get(key)
        if known is not None and hmac.compare_digest(known, tag):
            return True, sent
        self.pbkdf2_runs += 1
        ok = await trio.to_thread.run_sync(verify_password, password, creds)
        if ok:
            if len(self._verified) >= CACHE_MAX:
                self._verified.clear()
            self._verified[key] = tag
        return ok, sent

    async def authenticate(
        self, authorization: str | None, peer: str | None, forwarded_for: str | None, forwarded: bool,
        *, count_sent: bool = False,
    ) -> Login:
        """mox's authentication steps after the method check; raises HTTPAuthError or WebapiError (``server``).

        ``count_sent``: fill :attr:`Login.sent_past_day` from the credentials read.
        """
        creds = parse_basic(authorization or "")
        if creds is None:
            raise HTTPAuthError(401, UNAUTHORIZED, challenge=True)
        ip = client_ip(peer, forwarded_for, forwarded)
        limiter = self.limiter
        if not limiter.allowed(ip):
            raise HTTPAuthError(429, TOO_MANY)
        username, password = creds
        target = ""
        try:
            account = self.ctx.config.account_for_login(username)
            target = account or ""
            if target and not limiter.allowed(ip, target):
                raise HTTPAuthError(429, TOO_MANY)
            ok, sent = await self._verify(account, password, count_sent)
        except HTTPAuthError:
            raise
        except Exception:  # noqa: BLE001 - the client gets a server error, we log why
            log.exception("verifying webapi credentials")
            limiter.failed(ip, target)
            raise WebapiError("server", "error verifying credentials") from None
        if not ok or account is None:
            limiter.failed(ip, target)
            raise HTTPAuthError(401, UNAUTHORIZED, challenge=True)
        acc = self.ctx.config.account(account)
        if acc is None:
            limiter.failed(ip, target)
            raise HTTPAuthError(401, UNAUTHORIZED, challenge=True)
        if acc.LoginDisabled:
            limiter.failed(ip, target)
            raise HTTPAuthError(401, LOGIN_DISABLED, challenge=True)
        limiter.succeeded(ip, account)
        return Login(account=account, address=username, remote_ip=ip, sent_past_day=sent)
