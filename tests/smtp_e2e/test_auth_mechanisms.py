"""AUTH mechanisms through a whole server: secrets come from the store, an
account whose password predates SCRAM-SHA-1/CRAM-MD5 keeps working with the
others, and setting the password again derives the missing secrets."""

from __future__ import annotations

import base64
import smtplib
import ssl

import scramp

from core.accounts import set_password
from core.runtime import Server
from tests.smtp_e2e.conftest import in_thread, ip_of

MECHS = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"


def _starttls(s: smtplib.SMTP) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    s.starttls(context=ctx)


def login(ip: str, mech: str, password: str = "moxmoxmox", *, tls: bool = False) -> str:
    """One AUTH over 1587 with an independent client; returns "code text"."""
    with smtplib.SMTP(ip, 1587, timeout=10) as s:
        if tls:
            _starttls(s)
        s.ehlo()
        if mech.startswith("SCRAM"):
            sock = s.sock
            cb = ("tls-server-end-point", sock) if mech.endswith("-PLUS") else None
            client = scramp.ScramClient([mech], "mox@localhost", password, channel_binding=cb)
            code, resp = s.docmd("AUTH", f"{mech} " + base64.b64encode(client.get_client_first().encode()).decode())
            if code != 334:
                return f"{code} {resp.decode()}"
            client.set_server_first(base64.b64decode(resp).decode())
            code, resp = s.docmd(base64.b64encode(client.get_client_final().encode()).decode())
            if code != 334:
                return f"{code} {resp.decode()}"
            final = base64.b64decode(resp).decode()
            if final.startswith("e="):
                code, resp = s.docmd("*")
                return f"{code} {resp.decode()}"
            client.set_server_final(final)
            code, resp = s.docmd("")
            return f"{code} {resp.decode()}"
        s.user, s.password = "mox@localhost", password
        method = {"CRAM-MD5": s.auth_cram_md5, "PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
        try:
            code, resp = s.auth(mech, method)
        except smtplib.SMTPAuthenticationError as exc:
            code, resp = exc.smtp_code, exc.smtp_error
        return f"{code} {resp.decode()}"


def ehlo_auth(ip: str, tls: bool) -> str:
    with smtplib.SMTP(ip, 1587, timeout=10) as s:
        if tls:
            _starttls(s)
        s.ehlo()
        return s.esmtp_features["auth"].strip()


async def test_every_mechanism_against_the_store(server: Server) -> None:
    ip = ip_of(server)
    assert await in_thread(lambda: ehlo_auth(ip, True)) == MECHS
    assert await in_thread(lambda: ehlo_auth(ip, False)) == "SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"
    for mech in ("SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"):
        assert await in_thread(lambda m=mech: login(ip, m)) == "235 2.7.0 nice", mech  # type: ignore[misc]
        assert (await in_thread(lambda m=mech: login(ip, m, "wrong"))).startswith("535 5.7.8 "), mech  # type: ignore[misc]
    for mech in ("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"):
        assert await in_thread(lambda m=mech: login(ip, m, tls=True)) == "235 2.7.0 nice", mech  # type: ignore[misc]


async def test_account_without_new_secrets_until_password_set(server: Server) -> None:
    ip = ip_of(server)
    # An account whose password was set before SCRAM-SHA-1 and CRAM-MD5 existed.
    await server.ctx.store.write(lambda c: c.execute("DELETE FROM account_secrets"))  # type: ignore[union-attr]
    assert (await in_thread(lambda: login(ip, "SCRAM-SHA-1"))).startswith("454 4.3.0 scram not possible")
    assert (await in_thread(lambda: login(ip, "CRAM-MD5"))).startswith("535 5.7.8 bad user/pass")
    for mech in ("SCRAM-SHA-256", "PLAIN", "LOGIN"):
        assert await in_thread(lambda m=mech: login(ip, m)) == "235 2.7.0 nice", mech  # type: ignore[misc]
    # Those attempts were no guesses: the failed-login budget is untouched.
    assert server.ctx.login_limiter.allowed(ip, "mox")
    await set_password(server.ctx, "mox", "moxmoxmox")  # type: ignore[arg-type]
    assert await in_thread(lambda: login(ip, "SCRAM-SHA-1")) == "235 2.7.0 nice"
    assert await in_thread(lambda: login(ip, "CRAM-MD5")) == "235 2.7.0 nice"
