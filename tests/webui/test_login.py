"""Login, sessions and CSRF of the admin and account interfaces, over HTTP as a browser would."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import httpx
import trio

from core.webui.auth import auth_limiter
from tests.webui.conftest import ADMIN_PASSWORD, PASSWORD, WebServer, start


def _set_cookies(r: httpx.Response) -> dict[str, str]:
    out = {}
    for v in r.headers.get_list("set-cookie"):
        out[v.split("=", 1)[0]] = v
    return out


async def test_login_prep_cookie_and_session_cookie_flags(web: WebServer) -> None:
    c = web.client("/admin/")
    r = await c.post("LoginPrep")
    token = r.json()["result"]
    cookie = _set_cookies(r)["webadminlogin"]
    assert f"webadminlogin={token}" in cookie
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin/" in cookie
    assert "Secure" not in cookie  # plain HTTP
    r = await c.post("Login", token, ADMIN_PASSWORD)
    assert r.status_code == 200
    c.csrf = r.json()["result"]
    session = _set_cookies(r)["webadminsession"]
    assert "HttpOnly" in session and "SameSite=Strict" in session and "Path=/admin/" in session
    assert "%28admin%29" in session  # mox's "<token> <account>" value
    assert await c.call("QueueSize") == 0


async def test_login_needs_login_cookie_and_right_password(web: WebServer) -> None:
    c = web.client("/admin/")
    err = await c.error("Login", "made-up-token", ADMIN_PASSWORD)
    assert err == {"code": "user:error", "message": "missing login token cookie"}
    token = await c.call("LoginPrep")
    err = await c.error("Login", token, "wrong")
    assert err == {"code": "user:loginFailed", "message": "invalid credentials"}
    acc = web.client("/account/")
    token = await acc.call("LoginPrep")
    err = await acc.error("Login", token, "mox@localhost", "wrong")
    assert err["code"] == "user:loginFailed"
    token = await acc.call("LoginPrep")
    err = await acc.error("Login", token, "nobody@localhost", PASSWORD)
    assert err["code"] == "user:loginFailed"


async def test_csrf_missing_or_wrong_is_refused(web: WebServer) -> None:
    for base, login in (("/admin/", (ADMIN_PASSWORD,)), ("/account/", ("mox@localhost", PASSWORD))):
        c = web.client(base)
        fn = "QueueSize" if base == "/admin/" else "SuppressionList"
        err = await c.error(fn)
        assert err == {"code": "user:noAuth", "message": "missing required csrf header"}
        err = await c.error(fn, csrf="something")
        assert err["code"] == "user:noAuth" and err["message"].startswith("no session for")
        await c.login(*login)
        assert await c.call(fn) is not None
        err = await c.error(fn, csrf="")
        assert err == {"code": "user:noAuth", "message": "missing required csrf header"}
        err = await c.error(fn, csrf="wrong" + c.csrf)
        assert err == {"code": "user:badAuth", "message": "mismatch between csrf and session tokens"}
        # The CSRF token of another session does not fit this one.
        other = web.client(base)
        await other.login(*login)
        err = await c.error(fn, csrf=other.csrf)
        assert err["code"] == "user:badAuth"


async def test_logout_ends_session(web: WebServer) -> None:
    c = await web.admin()
    assert await c.call("Logout") is None
    err = await c.error("QueueSize")
    assert err["code"] in ("user:noAuth", "user:badAuth")
    # Even with the old cookie sent again, the session is gone.
    acc = await web.account()
    cookie = acc.http.cookies.get("webaccountsession")
    await acc.call("Logout")
    acc.http.cookies.set("webaccountsession", cookie or "", domain=web.ip)
    err = await acc.error("SuppressionList")
    assert err == {"code": "user:badAuth", "message": "unknown session token"}


async def test_sessions_are_stored_hashed_and_survive_restart(tmp_path: Path) -> None:
    directory = None
    ip = None
    cookies: dict[str, str] = {}
    csrf = {}
    async for web in start(tmp_path):
        directory, ip = web.directory, web.ip
        a = await web.admin()
        b = await web.account()
        csrf = {"admin": a.csrf, "account": b.csrf}
        cookies = {"webadminsession": a.http.cookies["webadminsession"],
                   "webaccountsession": b.http.cookies["webaccountsession"]}
    assert directory is not None
    token = cookies["webadminsession"].strip('"').split(" ")[0]
    db = sqlite3.connect(_db_path(directory))
    rows = db.execute("SELECT token_hash, csrf_hash FROM webadmin_sessions").fetchall()
    db.close()
    assert rows == [(hashlib.sha256(token.encode()).hexdigest(), hashlib.sha256(csrf["admin"].encode()).hexdigest())]
    async for web in start(tmp_path, directory=directory, ip=ip):
        a = web.client("/admin/")
        a.http.cookies.set("webadminsession", cookies["webadminsession"], domain=web.ip)
        a.csrf = csrf["admin"]
        assert await a.call("QueueSize") == 0
        b = web.client("/account/")
        b.http.cookies.set("webaccountsession", cookies["webaccountsession"], domain=web.ip)
        b.csrf = csrf["account"]
        assert await b.call("SuppressionList") == []


def _db_path(directory: Path) -> Path:
    dbs = [p for p in directory.rglob("*") if p.suffix in (".db", ".sqlite", ".sqlite3")]
    assert dbs, list(directory.rglob("*"))
    return dbs[0]


async def test_failed_logins_share_the_limiter_with_smtp_and_webapi(web: WebServer) -> None:
    limiter = auth_limiter(web.ctx)
    assert limiter is web.ctx.login_limiter  # the one SMTP AUTH and the webapi use
    # The limiter's windows are fixed minutes: start well inside one (bounded wait).
    with trio.fail_after(10):
        while time.time() % 60 > 50:
            await trio.sleep(0.5)
    # Nine failures counted elsewhere (as SMTP AUTH would count them) ...
    for _ in range(9):
        limiter.failed("127.0.0.1")
    assert limiter.allowed("127.0.0.1")
    # ... plus one failed web login reach the per-minute limit of ten ...
    c = web.client("/admin/")
    token = await c.call("LoginPrep")
    await c.error("Login", token, "wrong")
    assert not limiter.allowed("127.0.0.1")
    # ... and then even the right password is refused from that address.
    token = await c.call("LoginPrep")
    err = await c.error("Login", token, ADMIN_PASSWORD)
    assert err == {"code": "user:error", "message": "too many authentication attempts"}
    acc = web.client("/account/")
    token = await acc.call("LoginPrep")
    err = await acc.error("Login", token, "mox@localhost", PASSWORD)
    assert err == {"code": "user:error", "message": "too many authentication attempts"}


async def test_https_cookies_are_secure(web: WebServer) -> None:
    async with httpx.AsyncClient(verify=False, timeout=20) as http:
        base = f"https://{web.ip}:1443/admin/api/"
        r = await http.post(base + "LoginPrep", json={"params": []})
        assert "Secure" in _set_cookies(r)["webadminlogin"]
        r = await http.post(base + "Login", json={"params": [r.json()["result"], ADMIN_PASSWORD]})
        assert "Secure" in _set_cookies(r)["webadminsession"]


async def test_oversized_api_body_is_refused_unread(web: WebServer) -> None:
    c = web.client("/admin/")
    big = b'{"params": ["' + b"x" * (2 * 1024 * 1024) + b'"]}'
    r = await c.http.post(c.base + "api/LoginPrep", content=big, headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "sherpa:badRequest"
    assert await c.call("LoginPrep")  # the server is fine


async def test_session_expiry_and_session_limits(web: WebServer) -> None:
    first = await web.admin()
    others = [await web.admin() for _ in range(9)]
    assert await first.call("QueueSize") == 0  # ten admin sessions may exist
    await web.admin()  # the eleventh drops the oldest (lifetimes are extended once a minute at most)
    err = await first.error("QueueSize")
    assert err == {"code": "user:badAuth", "message": "unknown session token"}
    assert await others[-1].call("QueueSize") == 0
    # A session unused for its lifetime has expired.
    acc = await web.account()
    await web.ctx.store.write(lambda c: c.execute("UPDATE webaccount_sessions SET expires = 1"))
    err = await acc.error("SuppressionList")
    assert err == {"code": "user:badAuth", "message": "session expired (after 24 hours inactivity)"}
