"""SMTP server end to end over loopback: smtplib and a raw client against serve_smtp."""

from __future__ import annotations

import smtplib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import trio

from core.loginlimit import LoginLimiter
from core.smtp.handler import MemoryHandler
from core.smtp.limits import ConnectionLimits, WindowLimiter
from core.smtp.reply import Reply
from core.smtp.session import WRITE_BATCH, SessionConfig
from tests.smtp.helpers import (
    CONN_ID,
    Certs,
    RawClient,
    ScramClient,
    plain_b64,
    smtp_client,
    start,
)
from tests.smtp.helpers import scram_login as scram_login_as

MSG = b"From: mjl@mox.example\r\nTo: other@example.org\r\nSubject: test\r\n\r\nhello\r\n"


def sub_handler(**kw: object) -> MemoryHandler:
    return MemoryHandler(
        "submission",
        logins={"mjl@mox.example": ("mjl", "test1234"), "off@mox.example": ("off", "test1234")},
        disabled={"off": "account closed"},
        iterations=64,
        **kw,  # type: ignore[arg-type]
    )


def cfg(**kw: object) -> SessionConfig:
    kw.setdefault("auth_fail_delay", 0)
    return SessionConfig(**kw)  # type: ignore[arg-type]


# -- greeting and EHLO ---------------------------------------------------------


async def test_ehlo_smtp_listener(nursery: trio.Nursery, certs: Certs) -> None:
    h = MemoryHandler("smtp")
    port = await start(
        nursery, h, cfg(hostname="mail.mox.example"), ssl_context=certs.server_context()
    )
    c = await RawClient.connect(port)
    assert await c.reply() == ["220 mail.mox.example ESMTP moxtrio"]
    assert await c.cmd("EHLO client.example") == [
        "250-mail.mox.example",
        "250-PIPELINING",
        "250-SIZE 104857600",
        "250-STARTTLS",
        "250-ENHANCEDSTATUSCODES",
        "250-8BITMIME",
        "250-LIMITS RCPTMAX=1000",
        "250 SMTPUTF8",
    ]
    assert (await c.cmd1("STARTTLS")).startswith("220 2.0.0 go! (")
    await c.starttls(certs.client_context())
    # After STARTTLS: no STARTTLS, REQUIRETLS instead; still no AUTH on port 25.
    r = await c.cmd("EHLO client.example")
    assert "250-STARTTLS" not in r and "250-REQUIRETLS" in r
    assert not any("AUTH" in line for line in r)
    assert await c.cmd1("QUIT") == "221 2.0.0 okay thanks bye"
    assert await c.read_eof() == b""


async def test_ehlo_submission_requires_tls_for_auth(nursery: trio.Nursery, certs: Certs) -> None:
    port = await start(nursery, sub_handler(), cfg(), ssl_context=certs.server_context())
    c = await RawClient.connect(port)
    await c.reply()
    r = await c.cmd("EHLO x")
    assert r[:4] == ["250-localhost", "250-PIPELINING", "250-SIZE 104857600", "250-STARTTLS"]
    assert not any("AUTH" in line for line in r)
    fr = [line for line in r if line.startswith("250-FUTURERELEASE ")]
    assert len(fr) == 1
    _, secs, when = fr[0].split(" ")
    assert secs == "5184000"
    t = datetime.strptime(when, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    assert abs((t - datetime.now(UTC)) - timedelta(seconds=5184000)) < timedelta(seconds=30)
    assert r[-4:] == [
        "250-ENHANCEDSTATUSCODES",
        "250-8BITMIME",
        "250-LIMITS RCPTMAX=1000",
        "250 SMTPUTF8",
    ]
    # PLAIN without TLS is refused; MAIL without auth too.
    assert (await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "test1234"))).startswith(
        "538 5.7.11 authentication requires tls ("
    )
    assert (await c.cmd1("MAIL FROM:<mjl@mox.example>")).startswith(
        "530 5.7.0 authentication required ("
    )
    await c.aclose()


async def test_ehlo_submission_plaintext_auth_allowed(nursery: trio.Nursery) -> None:
    port = await start(nursery, sub_handler(), cfg(require_tls_for_auth=False))
    c = await RawClient.connect(port)
    await c.reply()
    r = await c.cmd("EHLO x")
    # Without TLS there is no channel binding, so no -PLUS mechanisms.
    assert "250-AUTH SCRAM-SHA-256 SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN" in r
    assert "250-STARTTLS" not in r and "250-REQUIRETLS" not in r
    await c.aclose()


# -- TLS -------------------------------------------------------------------------


async def test_starttls_auth_plain_and_submit(nursery: trio.Nursery, certs: Certs) -> None:
    h = sub_handler()
    port = await start(nursery, h, cfg(), ssl_context=certs.server_context())

    def client() -> dict[str, object]:
        with smtp_client(port) as s:
            s.ehlo()
            s.starttls(context=certs.client_context())
            s.ehlo()
            feats = dict(s.esmtp_features)
            s.login("mjl@mox.example", "test1234")
            refused = s.sendmail("mjl@mox.example", ["other@example.org"], MSG)
            return {"features": feats, "refused": refused}

    res = await trio.to_thread.run_sync(client)
    feats = res["features"]
    assert isinstance(feats, dict)
    assert feats["auth"].strip() == (
        "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"
    )
    assert "requiretls" in feats and "starttls" not in feats
    assert res["refused"] == {}
    env, data, msg = h.delivered[0]
    assert str(env.mail_from) == "mjl@mox.example"
    assert [str(r) for r in env.recipients] == ["other@example.org"]
    assert data == MSG and msg.size == len(MSG) and msg.have_body and not msg.has_8bit


async def test_implicit_tls_submissions(nursery: trio.Nursery, certs: Certs) -> None:
    h = sub_handler()
    h.listener_kind = "submissions"
    seen: list[tuple[bool, str]] = []

    orig = h.deliver

    async def deliver(info, envelope, message):  # type: ignore[no-untyped-def]
        seen.append((info.tls, info.username))
        return await orig(info, envelope, message)

    h.deliver = deliver  # type: ignore[method-assign]
    port = await start(nursery, h, cfg(), ssl_context=certs.server_context(), implicit_tls=True)

    def client() -> tuple[bool, dict[str, str]]:
        with smtplib.SMTP_SSL(
            "127.0.0.1",
            port,
            local_hostname="c.example",
            context=certs.client_context(),
            timeout=10,
        ) as s:
            s.ehlo()
            feats = dict(s.esmtp_features)
            s.login("mjl@mox.example", "test1234")
            s.sendmail("mjl@mox.example", ["a@example.org"], MSG)
            return s.has_extn("starttls"), feats

    has_starttls, feats = await trio.to_thread.run_sync(client)
    assert not has_starttls
    assert feats["auth"].strip() == (
        "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"
    )
    assert "futurerelease" in feats and "requiretls" in feats
    assert seen == [(True, "mjl@mox.example")]


async def test_starttls_with_pipelined_plaintext_is_not_executed(
    nursery: trio.Nursery, certs: Certs
) -> None:
    # Command injection (CVE-2011-0411 style): bytes after STARTTLS belong to
    # the TLS handshake, never to the plaintext command stream.
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg(), ssl_context=certs.server_context())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    await c.send("STARTTLS\r\nMAIL FROM:<evil@example.org>\r\n")
    assert (await c.reply())[0].startswith("220 2.0.0 go!")
    rest = await c.read_eof()
    assert b"looking good" not in rest and b"250" not in rest


async def test_starttls_errors(nursery: trio.Nursery, certs: Certs) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg())
    c = await RawClient.connect(port)
    await c.reply()
    assert (await c.cmd1("STARTTLS")).startswith("503 5.5.1 no ehlo/helo yet (")
    await c.cmd("EHLO x")
    assert (await c.cmd1("STARTTLS")).startswith("502 5.5.1 starttls not available (")
    await c.aclose()


# -- AUTH --------------------------------------------------------------------------


async def auth_client(port: int, certs: Certs | None = None) -> RawClient:
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    return c


async def test_auth_plain_initial_and_continuation(nursery: trio.Nursery) -> None:
    h = sub_handler()
    port = await start(nursery, h, cfg(require_tls_for_auth=False))
    c = await auth_client(port)
    assert (
        await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "test1234")) == "235 2.7.0 nice"
    )
    assert (await c.cmd1("AUTH PLAIN")).startswith("503 5.5.1 already authenticated (")
    assert (await c.cmd1("MAIL FROM:<mjl@mox.example>")) == "250 2.1.0 looking good"
    await c.aclose()

    c = await auth_client(port)
    assert await c.cmd1("AUTH PLAIN") == "334 "
    assert await c.cmd1(plain_b64("mjl@mox.example", "test1234")) == "235 2.7.0 nice"
    await c.aclose()

    # Authorization identity for another user is refused.
    c = await auth_client(port)
    r = await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "test1234", authz="x@y"))
    assert r.startswith("535 5.7.8 cannot assume other role (")
    # Cancel with "*".
    assert await c.cmd1("AUTH PLAIN") == "334 "
    assert (await c.cmd1("*")).startswith("501 5.5.0 authentication aborted (")
    assert (await c.cmd1("AUTH PLAIN !!!")).startswith("501 5.5.2 invalid base64")
    assert (await c.cmd1("AUTH DIGEST-MD5")).startswith(
        "504 5.5.4 mechanism DIGEST-MD5 not supported ("
    )
    await c.aclose()


async def test_auth_wrong_password_and_unknown_user(nursery: trio.Nursery) -> None:
    port = await start(nursery, sub_handler(), cfg(require_tls_for_auth=False))
    c = await auth_client(port)
    r = await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "wrong"))
    assert r.startswith("535 5.7.8 bad user/pass (")
    m = CONN_ID.search(r)
    assert m
    r2 = await c.cmd1("AUTH PLAIN " + plain_b64("nobody@mox.example", "test1234"))
    assert r2 == f"535 5.7.8 bad user/pass ({m.group(1)})"  # Same id for the connection.
    # Disabled account: only after a correct password.
    r3 = await c.cmd1("AUTH PLAIN " + plain_b64("off@mox.example", "test1234"))
    assert r3.startswith("525 5.7.13 login is disabled for this account: account closed (")
    r4 = await c.cmd1("AUTH PLAIN " + plain_b64("off@mox.example", "bad"))
    assert r4.startswith("535 5.7.8 bad user/pass")
    await c.aclose()


async def test_auth_login(nursery: trio.Nursery) -> None:
    port = await start(nursery, sub_handler(), cfg(require_tls_for_auth=False))

    def client(password: str) -> tuple[int, bytes]:
        with smtp_client(port) as s:
            s.ehlo()
            s.user, s.password = "mjl@mox.example", password
            return s.auth("LOGIN", s.auth_login, initial_response_ok=False)

    assert await trio.to_thread.run_sync(client, "test1234") == (
        235,
        b"2.7.0 nice",
    )
    with pytest.raises(smtplib.SMTPAuthenticationError) as ei:
        await trio.to_thread.run_sync(client, "nope")
    assert ei.value.smtp_code == 535

    # Raw: challenges are base64 "Username:" and "Password:", as mox sends them.
    c = await auth_client(port)
    assert await c.cmd1("AUTH LOGIN") == "334 VXNlcm5hbWU6"
    assert await c.cmd1("bWpsQG1veC5leGFtcGxl") == "334 UGFzc3dvcmQ6"
    assert await c.cmd1("dGVzdDEyMzQ=") == "235 2.7.0 nice"
    await c.aclose()


async def scram_login(c: RawClient, user: str, password: str) -> str:
    return await scram_login_as(c, "SCRAM-SHA-256", ScramClient(user, password))


async def test_auth_scram_sha256(nursery: trio.Nursery) -> None:
    h = sub_handler()
    port = await start(nursery, h, cfg())  # SCRAM does not need TLS.
    c = await auth_client(port)
    assert (await scram_login(c, "mjl@mox.example", "wrong")).startswith(
        "535 5.7.8 bad credentials ("
    )
    assert await scram_login(c, "mjl@mox.example", "test1234") == "235 2.7.0 nice"
    assert await c.cmd1("MAIL FROM:<mjl@mox.example>") == "250 2.1.0 looking good"
    await c.aclose()
    c = await auth_client(port)
    # An unknown user goes through the whole exchange (decoy salt), like a wrong password.
    assert (await scram_login(c, "nobody@mox.example", "x")).startswith(
        "535 5.7.8 bad credentials ("
    )
    assert (await scram_login(c, "off@mox.example", "test1234")).startswith("525 5.7.13 ")
    # Channel binding requested on a plaintext connection.
    r = await c.cmd1("AUTH SCRAM-SHA-256 " + "cD10bHMtZXhwb3J0ZXIsLG49dSxyPWFiYw==")
    assert r.startswith("501 5.5.2 scram: channel binding not supported without tls (")
    await c.aclose()


async def test_auth_failures_limit_new_connections(nursery: trio.Nursery) -> None:
    limits = ConnectionLimits(auth_failures=LoginLimiter())
    port = await start(nursery, sub_handler(), cfg(require_tls_for_auth=False), limits=limits)
    smtp_port = await start(nursery, MemoryHandler("smtp"), cfg(), limits=limits)
    c = await auth_client(port)
    for _ in range(10):
        r = await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "wrong"))
        assert r.startswith("535 ")
    await c.aclose()
    c = await RawClient.connect(port)
    assert await c.reply() == ["421 4.7.0 too many auth failures"]
    assert await c.read_eof() == b""
    # The delivery listener is not affected.
    c = await RawClient.connect(smtp_port)
    assert (await c.reply())[0].startswith("220 ")
    await c.aclose()


async def test_auth_success_forgives_failures(nursery: trio.Nursery) -> None:
    limits = ConnectionLimits(auth_failures=LoginLimiter())
    port = await start(nursery, sub_handler(), cfg(require_tls_for_auth=False), limits=limits)
    c = await auth_client(port)
    for _ in range(9):
        await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "wrong"))
    assert (
        await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "test1234")) == "235 2.7.0 nice"
    )
    await c.aclose()
    assert limits.auth_failures is not None
    for _ in range(10):
        assert limits.auth_failures.allowed("127.0.0.1")
        limits.auth_failures.failed("127.0.0.1")


async def test_auth_slowdown_after_third_failure(nursery: trio.Nursery) -> None:
    port = await start(nursery, sub_handler(), cfg(require_tls_for_auth=False, auth_fail_delay=0.3))
    c = await auth_client(port)
    times = []
    for _ in range(5):
        t0 = trio.current_time()
        await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "wrong"))
        times.append(trio.current_time() - t0)
    # Attempts 1-4 are answered at once; the 5th waits (failures - 3) * delay.
    assert max(times[:4]) < 0.25, times
    assert times[4] >= 0.3, times
    await c.aclose()


# -- mail transactions -------------------------------------------------------------


async def test_pipelined_transaction_in_one_write(nursery: trio.Nursery) -> None:
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.send(
        "EHLO client.example\r\nMAIL FROM:<a@example.org>\r\nRCPT TO:<b@mox.example>\r\n"
        "RCPT TO:<c@mox.example>\r\nDATA\r\n"
    )
    assert (await c.reply())[-1] == "250 SMTPUTF8"
    assert await c.reply() == ["250 2.1.0 looking good"]
    assert await c.reply() == ["250 2.1.0 now on the list"]
    assert await c.reply() == ["250 2.1.0 now on the list"]
    assert await c.reply() == ["354 see you at the bare dot"]
    # Data, end marker and the next commands in one write too.
    await c.send(b"Subject: x\r\n\r\nbody\r\n.\r\nNOOP\r\nQUIT\r\n")
    assert await c.reply() == ["250 2.0.0 it is done"]
    assert await c.reply() == ["250 2.0.0 alrighty"]
    assert await c.reply() == ["221 2.0.0 okay thanks bye"]
    env, data, _ = h.delivered[0]
    assert data == b"Subject: x\r\n\r\nbody\r\n"
    assert [str(r) for r in env.recipients] == ["b@mox.example", "c@mox.example"]


async def test_8bitmime_and_smtputf8(nursery: trio.Nursery) -> None:
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg())
    body = "From: ñoño@example.org\r\nSubject: héllo\r\n\r\nÿ\r\n".encode()

    def client() -> None:
        with smtp_client(port) as s:
            s.sendmail(
                "ñoño@example.org",
                ["dést@mox.example"],
                body,
                mail_options=["BODY=8BITMIME", "SMTPUTF8"],
            )

    await trio.to_thread.run_sync(client)
    env, data, msg = h.delivered[0]
    assert env.smtputf8 and env.body == "8BITMIME"
    assert env.mail_from.localpart == "ñoño" and str(env.recipients[0]) == "dést@mox.example"
    assert data == body and msg.has_8bit

    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    r = await c.cmd1("MAIL FROM:<ñoño@example.org>")
    assert r.startswith("550 5.6.7 non-ascii address not permitted without smtputf8 (")
    assert await c.cmd1("MAIL FROM:<a@example.org> BODY=8BITMIME") == "250 2.1.0 looking good"
    r = await c.cmd1("RCPT TO:<dést@mox.example>")
    assert r.startswith("553 5.6.7 non-ascii address not permitted without smtputf8 (")
    # IDNA domains need SMTPUTF8 too; quoted localparts and IP literals parse.
    assert await c.cmd1('RCPT TO:<"a b"@mox.example>') == "250 2.1.0 now on the list"
    r = await c.cmd1("RCPT TO:<x@[127.0.0.1]>")
    assert r.startswith("550 5.1.1 not accepting email for ip (")
    await c.aclose()


async def test_oversize_message(nursery: trio.Nursery) -> None:
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg(max_message_size=1000))
    c = await RawClient.connect(port)
    await c.reply()
    r = await c.cmd("EHLO x")
    assert "250-SIZE 1000" in r
    assert (await c.cmd1("MAIL FROM:<a@example.org> SIZE=1001")).startswith(
        "552 5.2.3 message too large ("
    )
    assert await c.cmd1("MAIL FROM:<a@example.org> SIZE=1000") == "250 2.1.0 looking good"
    await c.cmd1("RCPT TO:<b@mox.example>")
    assert await c.cmd1("DATA") == "354 see you at the bare dot"
    await c.send(b"x" * 500 + b"\r\n" + b"y" * 600 + b"\r\n")
    r = await c.reply()
    assert r[0].startswith("451 4.2.3 error copying data to file (")
    assert await c.read_eof() == b""
    assert h.delivered == []


async def test_size_param_over_default_max_uses_5_3_4(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    r = await c.cmd1("MAIL FROM:<a@example.org> SIZE=104857601")
    assert r.startswith("552 5.3.4 message too large (")
    await c.aclose()


async def test_bad_sequences(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg())
    c = await RawClient.connect(port)
    await c.reply()
    assert (await c.cmd1("MAIL FROM:<a@example.org>")).startswith("503 5.5.1 no ehlo/helo yet (")
    await c.cmd("HELO client.example")
    assert (await c.cmd1("RCPT TO:<b@mox.example>")).startswith("503 5.5.1 missing MAIL FROM (")
    assert (await c.cmd1("DATA")).startswith("503 5.5.1 missing MAIL FROM (")
    await c.cmd1("MAIL FROM:<a@example.org>")
    assert (await c.cmd1("MAIL FROM:<a@example.org>")).startswith("503 5.5.1 already have MAIL (")
    assert (await c.cmd1("DATA")).startswith("503 5.5.1 missing RCPT TO (")
    assert (await c.cmd1("AUTH PLAIN")).startswith(
        "503 5.5.1 authentication only allowed on submission ports ("
    )
    assert await c.cmd1("RSET") == "250 2.0.0 all clear"
    assert (await c.cmd1("RCPT TO:<b@mox.example>")).startswith("503 5.5.1 missing MAIL FROM (")
    assert (await c.cmd1("FOO")).startswith("500 5.5.1 unknown command (")
    assert (await c.cmd1("BDAT 10 LAST")).startswith("502 5.5.1 command not implemented (")
    assert (await c.cmd1("VRFY x")).startswith("252 2.7.0 no verify but will try delivery (")
    assert (await c.cmd1("EXPN x")).startswith("252 2.7.0 no expand but will try delivery (")
    assert await c.cmd1("HELP") == "214 2.0.0 see rfc 5321 (smtp)"
    assert (await c.cmd1("MAIL TO:<x@y>")).startswith('501 5.5.2 expected " FROM:"')
    assert (await c.cmd1("MAIL FROM:<a@@b>")).startswith("501 5.5.2 ")
    await c.aclose()


async def test_first_unknown_command_closes(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert await c.reply() == ["500 5.5.2 please try again speaking smtp"]
    assert await c.read_eof() == b""


async def test_line_too_long_closes(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.send("NOOP " + "x" * 3000 + "\r\n")
    assert await c.reply() == ["500 5.5.0 line too long, smtp max is 512, we reached 2048"]
    assert await c.read_eof() == b""


async def test_too_many_errors_closes(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg(max_errors=3))
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    for _ in range(2):
        assert (await c.cmd1("RCPT TO:<a@b.example>")).startswith("503 ")
    await c.send("RCPT TO:<a@b.example>\r\n")
    assert (await c.reply())[0].startswith("503 ")
    assert await c.reply() == ["421 4.7.0 too many errors, closing connection"]
    assert await c.read_eof() == b""


async def data_transaction(c: RawClient, data: bytes) -> list[str]:
    await c.cmd1("MAIL FROM:<a@example.org>")
    await c.cmd1("RCPT TO:<b@mox.example>")
    assert await c.cmd1("DATA") == "354 see you at the bare dot"
    await c.send(data)
    return await c.reply()


async def test_bare_lf_and_cr_in_data(nursery: trio.Nursery) -> None:
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    # Smuggling attempt: "\n.\n" is not an end marker, and makes the message bad.
    r = await data_transaction(c, b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<evil@example.org>\r\n.\r\n")
    assert r[0].startswith("500 5.5.2 invalid bare \\r or \\n, may be smtp smuggling (")
    r = await data_transaction(c, b"Subject: a\r\n\r\nx\r\n.\nRCPT TO:<e@x>\r\n.\r\n")
    assert r[0].startswith("500 5.5.2 invalid bare")
    r = await data_transaction(c, b"Subject: a\r\n\r\nbare\rcr\r\n.\r\n")
    assert r[0].startswith("500 5.5.2 invalid bare")
    # A lone bare LF inside a line is accepted and stored as CRLF (like mox).
    r = await data_transaction(c, b"Subject: a\r\n\r\nline1\nline2\r\n.\r\n")
    assert r == ["250 2.0.0 it is done"]
    assert len(h.delivered) == 1
    assert h.delivered[0][1] == b"Subject: a\r\n\r\nline1\r\nline2\r\n"
    # The transaction was reset after each failure; the session is still usable.
    assert await c.cmd1("NOOP") == "250 2.0.0 alrighty"
    await c.aclose()


async def test_dot_stuffing_round_trip(nursery: trio.Nursery) -> None:
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg())
    msg = b"Subject: dots\r\n\r\n.\r\n..\r\n.leading\r\nmid.dle\r\n. \r\n...\r\nend"

    def client() -> None:
        with smtp_client(port) as s:
            s.sendmail("a@example.org", ["b@mox.example"], msg)

    await trio.to_thread.run_sync(client)
    assert h.delivered[0][1] == msg + b"\r\n"  # smtplib adds the final CRLF.


async def test_too_many_recipients(nursery: trio.Nursery) -> None:
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    await c.cmd1("MAIL FROM:<a@example.org>")
    await c.send("".join(f"RCPT TO:<r{i}@mox.example>\r\n" for i in range(1001)))
    for _ in range(1000):
        assert await c.reply() == ["250 2.1.0 now on the list"]
    r = await c.reply()
    assert r[0].startswith("452 4.5.3 max of 1000 recipients reached (")
    await c.aclose()


async def test_null_sender_single_recipient_on_smtp(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    assert await c.cmd1("MAIL FROM:<>") == "250 2.1.0 looking good"
    assert await c.cmd1("RCPT TO:<a@mox.example>") == "250 2.1.0 now on the list"
    r = await c.cmd1("RCPT TO:<b@mox.example>")
    assert r.startswith("452 4.5.3 only one recipient allowed with null reverse address (")
    assert (await c.cmd1("MAIL FROM:<x@[1.2.3.4]>")).startswith("503 5.5.1 already have MAIL")
    await c.cmd1("RSET")
    assert (await c.cmd1("MAIL FROM:<x@[1.2.3.4]>")).startswith("550 5.7.0 domain name required (")
    await c.aclose()


async def submission_session(port: int) -> RawClient:
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    assert (
        await c.cmd1("AUTH PLAIN " + plain_b64("mjl@mox.example", "test1234")) == "235 2.7.0 nice"
    )
    return c


async def test_holdfor_holduntil(nursery: trio.Nursery) -> None:
    h = sub_handler()
    port = await start(nursery, h, cfg(require_tls_for_auth=False))
    c = await submission_session(port)
    cases = {
        "HOLDFOR=5184001": "554 5.5.4 future release interval too far in the future (",
        "HOLDUNTIL=2000-01-01T00:00:00Z": "554 5.5.4 requested future release time is in the past (",
        "HOLDUNTIL=2999-01-01T00:00:00Z": "554 5.5.4 requested future release time is too far in the future (",
        "HOLDFOR=10 HOLDUNTIL=2999-01-01T00:00:00Z": "501 5.5.4 cannot use both HOLDUNTIL and HOLFOR (",
        "HOLDUNTIL=tomorrow": "501 5.5.2 expected rfc 3339 date-time in utc",
        "FOO=bar": '555 5.3.3 unrecognized parameter "FOO" (',
        "SIZE=1 size=2": '501 5.5.4 duplicate param "size" (',
        "BODY=BINARYMIME": '555 5.5.4 unrecognized parameter "BODY" (',
        "REQUIRETLS": "530 5.7.10 requiretls only allowed on tls-encrypted connections (",
    }
    for params, want in cases.items():
        r = await c.cmd1(f"MAIL FROM:<mjl@mox.example> {params}")
        assert r.startswith(want), (params, r)
    assert await c.cmd1("MAIL FROM:<mjl@mox.example> HOLDFOR=3600") == "250 2.1.0 looking good"
    await c.cmd1("RCPT TO:<x@example.org>")
    await c.cmd1("DATA")
    await c.send(MSG + b".\r\n")
    assert await c.reply() == ["250 2.0.0 it is done"]
    env = h.delivered[0][0]
    assert env.future_release_request == "for;3600"
    assert env.future_release is not None
    delta = env.future_release - datetime.now(UTC)
    assert timedelta(seconds=3500) < delta <= timedelta(seconds=3600)

    until = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert (
        await c.cmd1(f"MAIL FROM:<mjl@mox.example> HOLDUNTIL={until}") == "250 2.1.0 looking good"
    )
    await c.cmd1("RCPT TO:<x@example.org>")
    await c.cmd1("DATA")
    await c.send(MSG + b".\r\n")
    await c.reply()
    env = h.delivered[1][0]
    assert env.future_release_request == f"until;{until}"
    assert env.future_release is not None
    assert env.future_release.strftime("%Y-%m-%dT%H:%M:%SZ") == until
    await c.aclose()


async def test_holdfor_not_on_smtp_listener(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    r = await c.cmd1("MAIL FROM:<a@example.org> HOLDFOR=10")
    assert r.startswith('555 5.3.3 unrecognized parameter "HOLDFOR" (')
    r = await c.cmd1("MAIL FROM:<a@example.org>")
    assert r == "250 2.1.0 looking good"
    r = await c.cmd1("RCPT TO:<b@mox.example> NOTIFY=NEVER")
    assert r.startswith('555 5.3.3 unrecognized parameter "NOTIFY" (')
    await c.aclose()


async def test_requiretls_over_tls(nursery: trio.Nursery, certs: Certs) -> None:
    h = MemoryHandler("smtp")
    port = await start(nursery, h, cfg(), ssl_context=certs.server_context())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    await c.cmd("STARTTLS")
    await c.starttls(certs.client_context())
    # State was reset by STARTTLS.
    assert (await c.cmd1("MAIL FROM:<a@example.org>")).startswith("503 5.5.1 no ehlo/helo yet")
    await c.cmd("EHLO x")
    r = await data_transaction_params(c, "REQUIRETLS")
    assert r == ["250 2.0.0 it is done"]
    assert h.delivered[0][0].requiretls
    await c.aclose()


async def data_transaction_params(c: RawClient, params: str) -> list[str]:
    assert await c.cmd1(f"MAIL FROM:<a@example.org> {params}") == "250 2.1.0 looking good"
    await c.cmd1("RCPT TO:<b@mox.example>")
    await c.cmd1("DATA")
    await c.send(MSG + b".\r\n")
    return await c.reply()


async def test_submission_requires_header_body(nursery: trio.Nursery) -> None:
    h = sub_handler()
    port = await start(nursery, h, cfg(require_tls_for_auth=False))
    c = await submission_session(port)
    await c.cmd1("MAIL FROM:<mjl@mox.example>")
    await c.cmd1("RCPT TO:<x@example.org>")
    await c.cmd1("DATA")
    await c.send(b"Subject: no body separator\r\n.\r\n")
    assert (await c.reply())[0].startswith(
        "554 5.6.0 message requires both header and body section ("
    )
    assert (await c.cmd1("MAIL FROM:<[1.2.3.4]>")).startswith("501 5.5.2 ")
    r = await c.cmd1("MAIL FROM:<mjl@[1.2.3.4]>")
    assert r.startswith("550 5.7.1 must match authenticated user (")
    await c.aclose()


async def test_handler_replies_and_failures(nursery: trio.Nursery) -> None:
    h = sub_handler(
        allowed_senders={"mjl": {"mjl@mox.example"}},
        rejected_rcpts={"nobody@mox.example": Reply(550, "5.1.1", "no such user")},
    )

    async def broken_deliver(info, envelope, message):  # type: ignore[no-untyped-def]
        raise RuntimeError("disk on fire")

    h.deliver = broken_deliver  # type: ignore[method-assign]
    port = await start(nursery, h, cfg(require_tls_for_auth=False))
    c = await submission_session(port)
    r = await c.cmd1("MAIL FROM:<other@mox.example>")
    assert r.startswith("550 5.7.1 must match authenticated user (")
    assert await c.cmd1("MAIL FROM:<mjl@mox.example>") == "250 2.1.0 looking good"
    r = await c.cmd1("RCPT TO:<nobody@mox.example>")
    assert r.startswith("550 5.1.1 no such user (")
    assert await c.cmd1("RCPT TO:<ok@example.org>") == "250 2.1.0 now on the list"
    await c.cmd1("DATA")
    await c.send(MSG + b".\r\n")
    assert (await c.reply())[0].startswith("451 4.3.0 error processing (")
    assert await c.cmd1("NOOP") == "250 2.0.0 alrighty"
    await c.aclose()


async def test_handler_421_closes(nursery: trio.Nursery) -> None:
    h = MemoryHandler("smtp", rejected_rcpts={"x421@mox.example": Reply(421, "4.0.0", "bye")})
    port = await start(nursery, h, cfg())
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    await c.cmd1("MAIL FROM:<a@example.org>")
    r = await c.cmd1("RCPT TO:<x421@mox.example>")
    assert r.startswith("421 4.0.0 bye (")
    assert await c.read_eof() == b""


# -- timeouts, limits, shutdown ----------------------------------------------------


async def test_idle_timeout(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg(idle_timeout=0.3, hostname="mx.example"))
    c = await RawClient.connect(port)
    await c.reply()
    t0 = trio.current_time()
    assert await c.reply() == ["421 4.4.2 mx.example timeout, closing connection"]
    assert trio.current_time() - t0 >= 0.25
    assert await c.read_eof() == b""


async def test_data_timeout(nursery: trio.Nursery) -> None:
    port = await start(nursery, MemoryHandler("smtp"), cfg(data_timeout=0.4))
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    await c.cmd1("MAIL FROM:<a@example.org>")
    await c.cmd1("RCPT TO:<b@mox.example>")
    await c.cmd1("DATA")
    # Keep trickling (never idle for long), but never finish.
    with trio.move_on_after(3):
        while True:
            try:
                await c.send(b"x\r\n")
            except trio.BrokenResourceError:
                break
            await trio.sleep(0.05)
    r = await c.reply()
    assert r[0].startswith("421 4.4.2 ")


async def test_concurrent_connection_limit(nursery: trio.Nursery) -> None:
    limits = ConnectionLimits(concurrent=WindowLimiter([(None, (2, 90, 270))]))
    port = await start(nursery, MemoryHandler("smtp"), cfg(), limits=limits)
    a = await RawClient.connect(port)
    b = await RawClient.connect(port)
    assert (await a.reply())[0].startswith("220 ")
    assert (await b.reply())[0].startswith("220 ")
    c = await RawClient.connect(port)
    assert await c.reply() == ["421 4.7.0 too many open connections from your ip or network"]
    assert await c.read_eof() == b""
    await a.cmd1("QUIT")
    await a.read_eof()
    await a.aclose()
    # The slot is released when a connection ends.
    with trio.fail_after(5):
        while True:
            d = await RawClient.connect(port)
            line = (await d.reply())[0]
            await d.aclose()
            if line.startswith("220 "):
                break
            await trio.sleep(0.05)
    await b.aclose()


async def test_connection_rate_limit(nursery: trio.Nursery) -> None:
    limits = ConnectionLimits(rate=WindowLimiter([(60, (3, 900, 2700))]))
    port = await start(nursery, MemoryHandler("smtp"), cfg(), limits=limits)
    for _ in range(3):
        c = await RawClient.connect(port)
        assert (await c.reply())[0].startswith("220 ")
        await c.aclose()
    c = await RawClient.connect(port)
    assert await c.reply() == [
        "421 4.7.0 connection rate from your ip or network too high, slow down please"
    ]
    await c.aclose()


async def test_shutdown_event(certs: Certs) -> None:
    shutdown = trio.Event()
    finished = trio.Event()
    async with trio.open_nursery() as nursery:

        async def run_server(task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
            async with trio.open_nursery() as inner:
                port = await start(inner, MemoryHandler("smtp"), cfg(), shutdown=shutdown)
                task_status.started(port)
            finished.set()

        port = await nursery.start(run_server)
        c = await RawClient.connect(port)
        await c.reply()
        await c.cmd("EHLO x")
        shutdown.set()
        assert await c.reply() == ["421 4.3.2 shutting down"]
        assert await c.read_eof() == b""
        with trio.fail_after(5):
            await finished.wait()
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)


async def test_listener_survives_garbage_and_resets(nursery: trio.Nursery, certs: Certs) -> None:
    h = MemoryHandler("submissions")
    port = await start(nursery, h, cfg(), ssl_context=certs.server_context(), implicit_tls=True)
    # Plaintext to a TLS port, then an abrupt close: must not hurt the listener.
    s = await trio.open_tcp_stream("127.0.0.1", port)
    await s.send_all(b"EHLO x\r\n")
    await trio.aclose_forcefully(s)
    s = await trio.open_tcp_stream("127.0.0.1", port)
    await trio.aclose_forcefully(s)
    c = await RawClient.connect(port, tls=certs.client_context())
    assert (await c.reply())[0] == "220 localhost ESMTP moxtrio"
    await c.aclose()


async def test_auth_failure_refusal_over_implicit_tls(nursery: trio.Nursery, certs: Certs) -> None:
    limits = ConnectionLimits(auth_failures=LoginLimiter())
    assert limits.auth_failures is not None
    for _ in range(10):
        limits.auth_failures.failed("127.0.0.1")
    h = MemoryHandler("submissions")
    port = await start(
        nursery, h, cfg(), ssl_context=certs.server_context(), implicit_tls=True, limits=limits
    )
    c = await RawClient.connect(port, tls=certs.client_context())
    assert await c.reply() == ["421 4.7.0 too many auth failures"]
    await c.aclose()


async def test_submission_plaintext_delivery_needs_tls(nursery: trio.Nursery) -> None:
    # SCRAM works without TLS (no password on the wire), but mail still needs
    # TLS unless NoRequireSTARTTLS (mox: requireTLSForDelivery).
    port = await start(nursery, sub_handler(), cfg(require_tls_for_delivery=True))
    c = await auth_client(port)
    assert await scram_login(c, "mjl@mox.example", "test1234") == "235 2.7.0 nice"
    assert await c.cmd1("MAIL FROM:<mjl@mox.example>") == "250 2.1.0 looking good"
    r = await c.cmd1("RCPT TO:<x@example.org>")
    assert r.startswith("530 5.7.0 STARTTLS required for mail delivery (")
    await c.aclose()


async def test_small_submission_stays_in_memory_large_one_is_spooled(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    """A small submitted message reaches the handler as bytes, with no spool
    file; one of WRITE_BATCH bytes or more, and any message on the delivery
    listener, as a temp file in the spool directory, removed afterwards."""
    spool = tmp_path / "spool"
    spool.mkdir()
    large = MSG + (b"y" * 998 + b"\r\n") * (WRITE_BATCH // 1000 + 1)
    h = sub_handler()
    port = await start(nursery, h, cfg(require_tls_for_auth=False, tmp_dir=str(spool)))

    def client() -> None:
        with smtp_client(port) as s:
            s.login("mjl@mox.example", "test1234")
            s.sendmail("mjl@mox.example", ["other@example.org"], MSG)
            s.sendmail("mjl@mox.example", ["other@example.org"], large)

    await trio.to_thread.run_sync(client)
    (_, small_data, small), (_, large_data, big) = h.delivered
    assert small.data == MSG and small_data == MSG and small.path == "" and small.size == len(MSG)
    assert big.data is None and big.path.startswith(str(spool)) and big.size == len(large)
    assert large_data == large
    assert list(spool.iterdir()) == []

    d = MemoryHandler("smtp")
    port = await start(nursery, d, cfg(tmp_dir=str(spool)))
    await trio.to_thread.run_sync(
        lambda: smtp_client(port).sendmail("a@example.org", ["b@mox.example"], MSG))
    [(_, data, msg)] = d.delivered
    assert data == MSG and msg.data is None and msg.path.startswith(str(spool))
    assert list(spool.iterdir()) == []
