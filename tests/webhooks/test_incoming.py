"""Incoming webhooks for mail delivered over SMTP (port 1025) to a running localserve."""

from __future__ import annotations

import base64
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from core.runtime import Server
from tests.support.inproc import localserve_config_dir, running_server
from tests.webhooks.helpers import Receiver, account_edit, receiver, wait_rows


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Server, Receiver]]:
    async with receiver() as rec:
        edit = account_edit(in_url=rec.url("/in"), auth="Bearer xyz")
        directory, _ = localserve_config_dir(tmp_path, edit_domains=edit)
        async with running_server(directory) as server:
            yield server, rec


async def deliver(server: Server, data: bytes, rcpt: str = "other@localhost",
                  mail_from: str = "mox@localhost") -> None:
    ip = str(server.config.static.Listeners["local"].IPs[0])

    def send() -> None:
        with smtplib.SMTP(ip, 1025, timeout=20) as s:
            s.sendmail(mail_from, [rcpt], data)

    await trio.to_thread.run_sync(send)


async def one_payload(rec: Receiver, n: int = 1) -> tuple[dict[str, Any], Any]:
    reqs = await rec.wait(n, "/in")
    return reqs[n - 1].json(), reqs[n - 1]


PLAIN = (
    "From: Mox <mox@localhost>\r\nTo: other@localhost\r\nCc: c@localhost\r\n"
    "Subject: hello one\r\nMessage-Id: <plain1@localhost>\r\n"
    "References: <A@x> garbage <b@Y>\r\nIn-Reply-To: <A@x>\r\n"
    "Date: Mon, 23 Nov 2026 23:56:45 +0000\r\nMIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n\r\nhi \u263a\r\n"
).encode()


async def test_plain_message_payload(env: tuple[Server, Receiver]) -> None:
    server, rec = env
    await deliver(server, PLAIN)
    p, req = await one_payload(rec)
    assert list(p) == ["Version", "From", "To", "CC", "BCC", "ReplyTo", "Subject", "MessageID",
                       "InReplyTo", "References", "Date", "Text", "HTML", "Structure", "Meta"]
    assert p["From"] == [{"Name": "Mox", "Address": "mox@localhost"}]
    assert p["To"] == [{"Name": "", "Address": "other@localhost"}]
    assert p["CC"] == [{"Name": "", "Address": "c@localhost"}] and p["BCC"] == [] and p["ReplyTo"] == []
    assert (p["Subject"], p["MessageID"], p["InReplyTo"]) == ("hello one", "<plain1@localhost>", "<A@x>")
    assert p["References"] == ["<a@x>", "<b@y>"]
    assert p["Date"] == "2026-11-23T23:56:45Z"
    assert (p["Text"], p["HTML"]) == ("hi \u263a\n", "")
    assert p["Structure"] == {"ContentType": "text/plain", "ContentTypeParams": {"charset": "utf-8"},
                              "ContentID": "", "ContentDisposition": "", "Filename": "",
                              "DecodedSize": 8, "Parts": []}
    meta = p["Meta"]
    assert list(meta) == ["MsgID", "MailFrom", "MailFromValidated", "MsgFromValidated", "RcptTo",
                          "DKIMVerifiedDomains", "RemoteIP", "Received", "MailboxName", "Automated"]
    assert (meta["MailFrom"], meta["RcptTo"], meta["MailboxName"]) == ("mox@localhost", "other@localhost", "Inbox")
    assert meta["Automated"] is False and meta["RemoteIP"].startswith("127.")
    assert meta["DKIMVerifiedDomains"] == []
    # MsgID names the stored message (usable with webapi MessageGet).
    assert server.ctx is not None
    rows = await server.ctx.store.read(
        lambda c: c.execute("SELECT id, message_id FROM messages WHERE id = ?", (meta["MsgID"],)).fetchall())
    assert [tuple(r) for r in rows] == [(meta["MsgID"], "<plain1@localhost>")]
    assert req.header("Authorization") == "Bearer xyz"
    assert b"\\u003cplain1@localhost\\u003e" in req.body
    # Queue record: an incoming hook is not tied to a queue message. The
    # attempt is recorded after the receiver answered: wait for its commit.
    hooks = await wait_rows(
        server.ctx.store,
        "SELECT queue_msg_id, is_incoming, outgoing_event, message_id FROM webhook_retired")
    assert hooks == [(0, 1, "", "<plain1@localhost>")]


async def test_multipart_alternative_payload(env: tuple[Server, Receiver]) -> None:
    server, rec = env
    data = (
        b"From: mox@localhost\r\nTo: other@localhost\r\nSubject: alt\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/alternative; boundary=xx\r\n\r\n"
        b"--xx\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain text\r\n"
        b"--xx\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"<p>h=C3=A9</p>\r\n--xx--\r\n"
    )
    await deliver(server, data)
    p, _ = await one_payload(rec)
    assert p["Text"] == "plain text" and p["HTML"] == "<p>h\u00e9</p>"
    s = p["Structure"]
    assert s["ContentType"] == "multipart/alternative" and s["ContentTypeParams"] == {"boundary": "xx"}
    assert s["DecodedSize"] == 0
    assert [x["ContentType"] for x in s["Parts"]] == ["text/plain", "text/html"]
    assert p["Date"] is None


async def test_attachment_payload_and_automated_null_sender(env: tuple[Server, Receiver]) -> None:
    server, rec = env
    pdf = b"%PDF-1.4 fake" * 10
    data = (
        b"From: mox@localhost\r\nTo: other@localhost\r\nSubject: att\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=mm\r\n\r\n"
        b"--mm\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
        b"--mm\r\nContent-Type: application/pdf; name=\"x.pdf\"\r\n"
        b"Content-Disposition: attachment; filename=\"report.pdf\"\r\nContent-Id: <c1@x>\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n" + base64.encodebytes(pdf).replace(b"\n", b"\r\n") +
        b"--mm--\r\n"
    )
    await deliver(server, data, mail_from="")
    p, _ = await one_payload(rec)
    assert p["Text"] == "see attached" and p["HTML"] == ""
    att = p["Structure"]["Parts"][1]
    assert att == {"ContentType": "application/pdf", "ContentTypeParams": {"name": "x.pdf"},
                   "ContentID": "<c1@x>", "ContentDisposition": "attachment",
                   "Filename": "report.pdf", "DecodedSize": len(pdf), "Parts": []}
    assert p["Meta"]["Automated"] is True and p["Meta"]["MailFrom"] == ""


async def test_list_headers_make_automated(env: tuple[Server, Receiver]) -> None:
    server, rec = env
    await deliver(server, b"From: mox@localhost\r\nList-Id: <l.example>\r\nSubject: l\r\n\r\nx\r\n")
    p, _ = await one_payload(rec)
    assert p["Meta"]["Automated"] is True
    assert p["Structure"]["ContentType"] == "/"  # no Content-Type header
    assert p["Text"] == "x\n"
