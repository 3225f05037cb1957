"""Replies a whole localserve (Pedantic: true) gives where mox's are known:
reply codes and texts, SMTPUTF8 enforcement, NUL bytes and invalid UTF-8."""

from __future__ import annotations

import base64
import smtplib

import pytest
import trio

from core.runtime import Server
from tests.smtp.helpers import RawClient
from tests.smtp_e2e.conftest import in_thread, ip_of, wait_rows


async def raw(server: Server, port: int) -> RawClient:
    stream = await trio.open_tcp_stream(ip_of(server), port)
    c = RawClient(stream)
    assert (await c.reply())[0].startswith("220 ")
    return c


async def login(c: RawClient) -> None:
    await c.cmd("EHLO client.example")
    assert await c.cmd1("AUTH PLAIN " + base64.b64encode(b"\0mox@localhost\0moxmoxmox").decode()) == (
        "235 2.7.0 nice"
    )


async def test_reply_texts_as_mox(server: Server) -> None:
    c = await raw(server, 1025)
    await c.cmd("EHLO client.example")
    assert await c.cmd1("MAIL FROM:<sender@localhost>") == "250 2.1.0 looking good"
    assert await c.cmd1("RCPT TO:<mox@localhost>") == "250 2.1.0 now on the list"
    assert await c.cmd1("DATA") == "354 see you at the bare dot"
    assert await c.cmd1("From: sender@localhost\r\nSubject: x\r\n\r\nhi\r\n.") == "250 2.2.0 it is done"
    await c.aclose()

    c = await raw(server, 1587)
    await c.cmd("EHLO client.example")
    assert await c.cmd1("AUTH LOGIN") == "334 VXNlcm5hbWU6"  # Username:
    assert await c.cmd1(base64.b64encode(b"mox@localhost").decode()) == "334 UGFzc3dvcmQ6"  # Password:
    assert await c.cmd1(base64.b64encode(b"moxmoxmox").decode()) == "235 2.7.0 nice"
    assert await c.cmd1("MAIL FROM:<mox@localhost>") == "250 2.1.0 looking good"
    assert await c.cmd1("RCPT TO:<someone@example.org>") == "250 2.1.0 now on the list"
    await c.aclose()


async def test_invalid_utf8_command_is_answered_and_session_goes_on(server: Server) -> None:
    for port in (1025, 1587):
        c = await raw(server, port)
        await c.cmd("EHLO client.example")
        await c.send(b"MAIL FROM:<\xff\xfe@localhost>\r\n")
        r = await c.reply()
        assert r[0].startswith("500 5.5.2 "), r
        assert await c.cmd1("NOOP") == "250 2.0.0 alrighty"
        assert await c.cmd1("QUIT") == "221 2.0.0 okay thanks bye"
        await c.aclose()


async def test_pedantic_refuses_utf8_headers_without_smtputf8(server: Server) -> None:
    ip = ip_of(server)
    refused = "550 5.6.0 smtputf8 extension is required but was not added to the MAIL command"
    headers_utf8 = "From: mox@localhost\r\nSubject: ünïcode\r\n\r\nhi\r\n".encode()
    nested_utf8 = (
        b"From: mox@localhost\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        b"--b\r\nContent-Type: text/plain\r\nContent-Description: \xc3\xa9t\xc3\xa9\r\n\r\nx\r\n--b--\r\n"
    )
    body_utf8 = "From: mox@localhost\r\nSubject: ascii\r\n\r\nhéllo\r\n".encode()

    def send(data: bytes, options: list[str], port: int = 1587) -> None:
        with smtplib.SMTP(ip, port, timeout=10) as s:
            if port == 1587:
                s.login("mox@localhost", "moxmoxmox")
            s.sendmail("mox@localhost", ["a@example.org"], data, mail_options=options)

    for data in (headers_utf8, nested_utf8):
        for port in (1587, 1025):
            with pytest.raises(smtplib.SMTPDataError) as info:
                await in_thread(lambda d=data, p=port: send(d, ["BODY=8BITMIME"], p))  # type: ignore[misc]
            assert f"{info.value.smtp_code} {info.value.smtp_error.decode()}".startswith(refused)
    # With SMTPUTF8 the same message is fine; an 8-bit body needs only 8BITMIME.
    await in_thread(lambda: send(headers_utf8, ["BODY=8BITMIME", "SMTPUTF8"]))
    await in_thread(lambda: send(body_utf8, ["BODY=8BITMIME"]))
    await wait_rows(server, "select 1 from retired", n=2)


async def test_pedantic_refuses_nul_in_data(server: Server) -> None:
    for port in (1025, 1587):
        c = await raw(server, port)
        if port == 1587:
            await login(c)
            sender = "mox@localhost"
        else:
            await c.cmd("EHLO client.example")
            sender = "other@localhost"
        assert await c.cmd1(f"MAIL FROM:<{sender}>") == "250 2.1.0 looking good"
        assert (await c.cmd1("RCPT TO:<a@localhost>")).startswith("250 ")
        assert await c.cmd1("DATA") == "354 see you at the bare dot"
        r = await c.cmd1("From: mox@localhost\r\nSubject: nul\r\n\r\nbad\x00byte\r\n.")
        assert r.startswith("554 5.6.0 malformed message: nul byte in message ("), r
        assert await c.cmd1("NOOP") == "250 2.0.0 alrighty"
        await c.aclose()
    count = await server.ctx.store.read(  # type: ignore[union-attr]
        lambda conn: conn.execute("select count(*) from messages where subject = 'nul'").fetchone()[0]
    )
    assert count == 0
