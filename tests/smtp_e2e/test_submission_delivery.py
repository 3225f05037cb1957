"""SMTP submission and delivery through a whole server: accounts, store,
queue, localserve delivery to its own listener, Extra and fromid."""

from __future__ import annotations

import email
import json
import smtplib
from email import policy

import pytest

from core.runtime import Server
from tests.smtp_e2e.conftest import in_thread, ip_of, submit, wait_rows

MSG = (
    b"From: mox@localhost\r\nTo: someone@example.org\r\nSubject: hello\r\n"
    b"X-Mox-Extra-order-REF: 42\r\nX-Mox-Extra-user-id: u1\r\n\r\nhi there\r\n"
)


async def test_submission_is_queued_delivered_and_stored_with_extra(server: Server) -> None:
    ip = ip_of(server)
    refused = await in_thread(lambda: submit(ip, ["someone@example.org"], MSG))
    assert refused == {}
    rows = await wait_rows(server, "select id, subject, rcpt_to_localpart, rcpt_to_domain, file_id, msg_prefix from messages")
    _, subject, lp, dom, file_id, prefix = rows[0]
    assert (subject, lp, dom) == ("hello", "someone", "example.org")
    data = bytes(prefix) + server.ctx.store.files.path(file_id).read_bytes()
    msg = email.message_from_bytes(data, policy=policy.default)
    # Submission added Message-Id and Date; the delivery listener a Received.
    assert msg["Message-Id"].endswith("@localhost>")
    assert msg["Date"]
    assert "by localhost" in msg["Received"]
    assert msg["X-Mox-Extra-order-REF"] == "42"  # the headers stay in the message
    retired = await wait_rows(server, "select success, extra, message_id from retired")
    success, extra, message_id = retired[0]
    assert success == 1
    assert json.loads(extra) == {"Order-Ref": "42", "User-Id": "u1"}
    # Generated Message-Id: the queue keeps it without <>.
    assert "<" not in message_id and message_id.endswith("@localhost")


async def test_duplicate_extra_key_refuses_submission(server: Server) -> None:
    data = b"From: mox@localhost\r\nX-Mox-Extra-Key: a\r\nX-Mox-Extra-key: b\r\n\r\nx\r\n"
    with pytest.raises(smtplib.SMTPDataError) as info:
        await in_thread(lambda: submit(ip_of(server), ["a@example.org"], data))
    assert info.value.smtp_code == 554
    assert b'5.6.0 duplicate x-mox-extra- key "Key"' in info.value.smtp_error
    assert await server.ctx.store.read(lambda c: c.execute("select count(*) from queue").fetchone()[0]) == 0


async def test_from_header_must_belong_to_account(server: Server) -> None:
    data = b"From: other@example.org\r\n\r\nx\r\n"
    with pytest.raises(smtplib.SMTPDataError) as info:
        await in_thread(lambda: submit(ip_of(server), ["a@example.org"], data))
    assert info.value.smtp_code == 550
    assert b"5.7.1 message from address must belong to authenticated user" in info.value.smtp_error


async def test_mail_from_must_belong_to_account(server: Server) -> None:
    with pytest.raises(smtplib.SMTPSenderRefused) as info:
        await in_thread(lambda: submit(ip_of(server), ["a@example.org"], MSG, mail_from="x@example.org"))
    assert info.value.smtp_code == 550
    assert b"5.7.1 must match authenticated user" in info.value.smtp_error


async def test_unknown_local_recipient_on_localserve_submission(server: Server) -> None:
    # mox's localserve accepts any local address on submission and delivers
    # it to the mox account (a webapi Send does the same).
    ip = ip_of(server)

    def rcpt(addr: str) -> tuple[int, bytes]:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("mox@localhost", "moxmoxmox")
            s.mail("mox@localhost", ["SMTPUTF8"])
            return s.rcpt(addr)

    assert await in_thread(lambda: rcpt("nosuchuser@localhost")) == (250, b"2.1.0 now on the list")
    assert await in_thread(lambda: rcpt("ñoñó@localhost")) == (250, b"2.1.0 now on the list")
    assert await in_thread(lambda: submit(ip, ["nobody@localhost"], MSG)) == {}
    rows = await wait_rows(
        server, "select account from messages where rcpt_to_localpart = 'nobody' and rcpt_to_domain = 'localhost'"
    )
    assert rows[0][0] == "mox"


async def test_login_with_catchall_variant_and_wrong_password(server: Server) -> None:
    ip = ip_of(server)
    assert await in_thread(lambda: submit(ip, ["a@example.org"], MSG, login="mox+anything@localhost")) == {}

    def bad() -> None:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("mox@localhost", "wrong")

    with pytest.raises(smtplib.SMTPAuthenticationError):
        await in_thread(bad)


async def test_delivery_listener_stores_in_account_and_localserve_accepts_anyone(server: Server) -> None:
    ip = ip_of(server)

    def deliver() -> dict[str, object]:
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            return s.sendmail("sender@localhost", ["mox@localhost", "whoever@elsewhere.example"],
                              b"From: sender@localhost\r\nSubject: in\r\n\r\nbody\r\n")

    assert await in_thread(deliver) == {}
    rows = await wait_rows(server, "select account, rcpt_to_localpart, rcpt_to_domain from messages order by id", n=2)
    assert [tuple(r) for r in rows] == [("mox", "mox", "localhost"), ("mox", "whoever", "elsewhere.example")]


async def test_localserve_special_recipients_at_rcpt_and_data(server: Server) -> None:
    ip = ip_of(server)

    def rcpt() -> tuple[int, bytes]:
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.ehlo()
            s.mail("sender@localhost")
            return s.rcpt("rcptto552@localhost")

    code, text = await in_thread(rcpt)
    assert code == 552 and text.startswith(b"5.0.0 failure with code 552 due to special localpart")

    with pytest.raises(smtplib.SMTPDataError) as info:
        await in_thread(lambda: submit(ip, ["subpermerror@other.example"], MSG))
    assert info.value.smtp_code == 550
    assert b"5.0.0 failure with code 550 due to special localpart" in info.value.smtp_error
    assert await server.ctx.store.read(lambda c: c.execute("select count(*) from queue").fetchone()[0]) == 0


async def test_fromid_login_gets_unique_mail_from_per_recipient(server: Server) -> None:
    ip = ip_of(server)
    await in_thread(lambda: submit(ip, ["a@example.org", "b@example.org"], MSG, login="mox+app@localhost"))
    rows = await wait_rows(server, "select from_id, sender_localpart, message_id from retired", n=2)
    fromids = {r[0] for r in rows}
    assert len(fromids) == 2 and all(len(f) == 22 for f in fromids)
    assert {r[1] for r in rows} == {f"mox+{f}" for f in fromids}
    assert len({r[2] for r in rows}) == 1  # one message, one MessageID

    # A chosen fromid is used as is, once; reuse and multiple recipients are refused.
    await in_thread(lambda: submit(ip, ["c@example.org"], MSG, login="mox+app@localhost",
                                   mail_from="mox+mychosenid@localhost"))
    await wait_rows(server, "select 1 from retired where from_id = 'mychosenid'")
    with pytest.raises(smtplib.SMTPDataError) as again:
        await in_thread(lambda: submit(ip, ["c@example.org"], MSG, login="mox+app@localhost",
                                       mail_from="mox+mychosenid@localhost"))
    assert again.value.smtp_code == 554 and b"5.1.7 bad fromid in smtp mail from address" in again.value.smtp_error
    with pytest.raises(smtplib.SMTPDataError) as multi:
        await in_thread(lambda: submit(ip, ["c@example.org", "d@example.org"], MSG, login="mox+app@localhost",
                                       mail_from="mox+other2@localhost"))
    assert multi.value.smtp_code == 554
    assert b"5.5.3 cannot send to multiple recipients with chosen fromid" in multi.value.smtp_error


async def test_starttls_submission_and_8bit_utf8(server: Server) -> None:
    ip = ip_of(server)
    data = "From: mox@localhost\r\nSubject: ünïcode\r\n\r\nhéllo ☺\r\n".encode()

    def send() -> dict[str, object]:
        import ssl

        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.starttls(context=ctx)
            s.login("mox@localhost", "moxmoxmox")
            return s.sendmail("mox@localhost", ["ü@example.org"], data, mail_options=["SMTPUTF8", "BODY=8BITMIME"])

    assert await in_thread(send) == {}
    rows = await wait_rows(server, "select has8bit, smtputf8, recipient_localpart from retired")
    assert tuple(rows[0]) == (1, 1, "ü")
