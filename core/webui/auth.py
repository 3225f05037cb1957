"""Login sessions of the admin and account web interfaces, as mox's webauth.

Flow (mox's): ``LoginPrep`` sets a random login token in a short-lived
cookie and returns it; ``Login`` needs the same token in the cookie and the
call (a third-party page cannot log a browser in), checks the credentials
under the shared failed-login limiter (SMTP AUTH and the webapi count in the
same one), and sets the session cookie ``<kind>session`` = ``<token>
<url-escaped account>``, HttpOnly, SameSite=Strict, Secure over HTTPS, path
the interface's. It returns a CSRF token that every later API call sends in
``x-mox-csrf``. Both tokens are random; the store keeps only their SHA-256,
so a copy of the database does not log anyone in. Sessions live in a table
of the interface's plugin and so survive a restart (mox keeps admin sessions
in memory only); they expire after a lifetime of inactivity, and the oldest
is dropped when too many exist (per account for the account interface).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import trio

from core.plugin_api import PluginContext
from core.sherpa import SherpaError, user_error
from core.store.migrations import Migration
from core.store.sql import Connection

#: mox sleeps this long before answering a bad password or session.
BAD_AUTH_DELAY = 1.0
LOGIN_COOKIE_MAX_AGE = 30

#: (valid, disabled, account name) for a user name and password.
Verifier = Callable[[str, str], Awaitable[tuple[bool, bool, str]]]


def session_migration(owner: str, table: str) -> Migration:
    """The table a web interface plugin keeps its sessions in."""
    return Migration(
        owner,
        1,
        f"""CREATE TABLE {table} (
            token_hash TEXT PRIMARY KEY,
            csrf_hash TEXT NOT NULL,
            account TEXT NOT NULL,
            login_address TEXT NOT NULL,
            created REAL NOT NULL,
            expires REAL NOT NULL
        );
        CREATE INDEX {table}_account ON {table}(account, expires);""",
    )


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _token(n: int) -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(n)).decode("ascii").rstrip("=")


def auth_limiter(ctx: PluginContext) -> Any:
    """The server's failed-login limiter, shared with SMTP AUTH and the webapi.

    The one place the web interfaces reach it: ``allowed(ip, account)``,
    ``failed(ip, account)`` and ``succeeded(ip, account)``.
    """
    return ctx.login_limiter


@dataclass
class WebRequest:
    """What the login flow needs from an HTTP request, and the cookies to set on the answer."""

    cookies: Mapping[str, str]
    csrf: str
    ip: str | None
    https: bool
    cookie_path: str
    set_cookies: list[dict[str, Any]] = field(default_factory=list)

    def cookie(self, name: str, value: str, max_age: int | None = None) -> None:
        self.set_cookies.append(
            {
                "key": name,
                "value": value,
                "max_age": max_age,
                "path": self.cookie_path,
                "secure": self.https,
                "httponly": True,
                "samesite": "Strict",
            }
        )


@dataclass(frozen=True)
class Session:
    account: str
    login_address: str
    token_hash: str


class AuthError(Exception):
    """Authentication failed; ``status`` is the HTTP status (200 with a sherpa error, or 429)."""

    def __init__(self, status: int, error: SherpaError) -> None:
        super().__init__(error.message)
        self.status = status
        self.error = error


def client_ip(peer: str | None, forwarded_for: str | None, forwarded: bool) -> str | None:
    raw = (forwarded_for or "").split(",")[0].strip() if forwarded else (peer or "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


class WebAuth:
    """Sessions of one web interface (``kind`` is ``webadmin`` or ``webaccount``)."""

    def __init__(
        self,
        ctx: PluginContext,
        *,
        kind: str,
        table: str,
        lifetime: float,
        max_sessions: int,
        per_account: bool,
        verify: Verifier,
        expired_text: str,
    ) -> None:
        self.ctx = ctx
        self.kind = kind
        self.table = table
        self.lifetime = lifetime
        self.max_sessions = max_sessions
        self.per_account = per_account
        self.verify = verify
        self.expired_text = expired_text

    @property
    def session_cookie(self) -> str:
        return self.kind + "session"

    @property
    def login_cookie(self) -> str:
        return self.kind + "login"

    # -- the API functions --------------------------------------------------------

    def login_prep(self, req: WebRequest) -> str:
        token = _token(8)
        req.cookie(self.login_cookie, token, LOGIN_COOKIE_MAX_AGE)
        return token

    async def login(self, req: WebRequest, login_token: str, username: str, password: str) -> str:
        cookie = req.cookies.get(self.login_cookie)
        if cookie is None or not hmac.compare_digest(cookie, login_token):
            raise user_error("missing login token cookie")
        if req.ip is None:
            raise SherpaError("server:error", "cannot find ip for rate limit check (missing x-forwarded-for header?)")
        limiter = auth_limiter(self.ctx)
        if not limiter.allowed(req.ip):
            raise user_error("too many authentication attempts")
        valid, disabled, account = await self.verify(username, password)
        if account and not limiter.allowed(req.ip, account):
            raise user_error("too many authentication attempts")
        if disabled:
            limiter.failed(req.ip, account)
            raise SherpaError("user:loginFailed", "login is disabled for this account")
        if not valid:
            limiter.failed(req.ip, account)
            await trio.sleep(BAD_AUTH_DELAY)
            raise SherpaError("user:loginFailed", "invalid credentials")
        limiter.succeeded(req.ip, account)
        session_token, csrf = await self.add(account, username)
        req.cookie(self.session_cookie, f"{session_token} {quote(account, safe='')}")
        req.cookie(self.login_cookie, "", 0)
        return csrf

    async def check(self, req: WebRequest, *, require_csrf: bool) -> Session:
        """The session of a request, or AuthError with mox's answer."""
        where = self.kind.removeprefix("web")
        if require_csrf and not req.csrf:
            raise AuthError(200, SherpaError("user:noAuth", "missing required csrf header"))
        cookie = req.cookies.get(self.session_cookie)
        if cookie is None:
            raise AuthError(200, SherpaError("user:noAuth", f'no session for "{where}" web interface'))
        if req.ip is None:
            raise AuthError(
                200, SherpaError("user:noAuth", "cannot find ip for rate limit check (missing x-forwarded-for header?)")
            )
        limiter = auth_limiter(self.ctx)
        if not limiter.allowed(req.ip):
            raise AuthError(429, SherpaError("user:error", "429 - too many auth attempts"))
        token, sep, account_q = cookie.partition(" ")
        try:
            if not sep:
                raise SherpaError("user:badAuth", "malformed session")
            account = unquote(account_q, errors="strict")
            session = await self.use(account, token, req.csrf if require_csrf else None)
        except (SherpaError, UnicodeDecodeError) as exc:
            # Not counted against the cookie's account: anyone can name it.
            limiter.failed(req.ip)
            await trio.sleep(BAD_AUTH_DELAY)
            if isinstance(exc, SherpaError):
                raise AuthError(200, exc) from None
            raise AuthError(200, SherpaError("user:badAuth", "malformed session account name")) from None
        limiter.succeeded(req.ip, session.account)
        return session

    async def logout(self, req: WebRequest, session: Session) -> None:
        def delete(conn: Connection) -> int:
            return conn.execute(f"DELETE FROM {self.table} WHERE token_hash = ?", (session.token_hash,)).rowcount

        if not await self.ctx.store.write(delete):
            raise user_error("removing session: unknown session")
        req.cookie(self.session_cookie, "", 0)

    # -- the session table --------------------------------------------------------------

    async def add(self, account: str, login_address: str) -> tuple[str, str]:
        """A new session; returns (session token, CSRF token). Drops expired and excess sessions."""
        session, csrf = _token(16), _token(16)
        now = time.time()

        def write(conn: Connection) -> None:
            conn.execute(f"DELETE FROM {self.table} WHERE expires < ?", (now,))
            scope, args = ("WHERE account = ?", (account,)) if self.per_account else ("", ())
            rows = conn.execute(
                f"SELECT token_hash FROM {self.table} {scope} ORDER BY expires DESC", args
            ).fetchall()
            for (old,) in rows[self.max_sessions - 1 :]:
                conn.execute(f"DELETE FROM {self.table} WHERE token_hash = ?", (old,))
            conn.execute(
                f"INSERT INTO {self.table} VALUES (?, ?, ?, ?, ?, ?)",
                (_hash(session), _hash(csrf), account, login_address, now, now + self.lifetime),
            )

        await self.ctx.store.write(write)
        return session, csrf

    async def use(self, account: str, token: str, csrf: str | None) -> Session:
        """Check a session (and its CSRF token when given); extends its lifetime."""
        h = _hash(token)
        row = await self.ctx.store.read(
            lambda c: c.execute(
                f"SELECT csrf_hash, account, login_address, expires FROM {self.table} WHERE token_hash = ?",
                (h,),
            ).fetchone()
        )
        now = time.time()
        if row is None or row[1] != account:
            raise SherpaError("user:badAuth", "unknown session token")
        csrf_hash, _, login_address, expires = row
        if expires < now:
            raise SherpaError("user:badAuth", self.expired_text)
        if csrf is not None and not hmac.compare_digest(csrf_hash, _hash(csrf)):
            raise SherpaError("user:badAuth", "mismatch between csrf and session tokens")
        if expires - now < self.lifetime - 60:
            # Extend at most once a minute: a write per page view would be waste.
            await self.ctx.store.write(
                lambda c: c.execute(
                    f"UPDATE {self.table} SET expires = ? WHERE token_hash = ?", (now + self.lifetime, h)
                )
            )
        return Session(account=account, login_address=login_address, token_hash=h)


def forwarded_for_listener(config: Any, keys: tuple[str, str], port: int, tls: bool) -> bool:
    """Whether the listener service a request came in on trusts X-Forwarded-* headers."""
    key = keys[1] if tls else keys[0]
    for _, lst in sorted(config.static.Listeners.items()):
        ws = getattr(lst, key, None)
        if ws is not None and ws.Enabled and lst.port(key) == port and ws.Forwarded:
            return True
    return False


def _password_matches(password: str, creds: Any) -> bool:
    """PBKDF2 + constant-time compare against the account's SCRAM StoredKey (in a thread)."""
    from core.store.accounts import InvalidPassword, salted_password, scram_keys

    try:
        salted = salted_password(password, creds.salt, creds.iterations)
    except InvalidPassword:
        return False
    return hmac.compare_digest(scram_keys(salted)[1], creds.stored_key)


async def verify_account_login(ctx: PluginContext, username: str, password: str) -> tuple[bool, bool, str]:
    """(valid, login disabled, account) for an email address and password."""
    from core.store.accounts import get_scram_credentials

    account = ctx.config.account_for_login(username)
    if account is None:
        return False, False, ""
    creds = await ctx.store.read(lambda c: get_scram_credentials(c, account))
    if creds is None or not await trio.to_thread.run_sync(_password_matches, password, creds):
        return False, False, account
    acc = ctx.config.account(account)
    if acc is None:
        return False, False, account
    return True, bool(acc.LoginDisabled), account
