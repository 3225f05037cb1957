"""The localserve mail viewer over HTTP: list, search, live events, the HTML part
under a sandboxing CSP, raw source and attachments, sent-message deliveries,
and accounts kept apart."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from email.message import EmailMessage
from pathlib import Path

import pytest
import trio

from core.accounts import set_password
from core.store.messages import insert_message
from core.store.models import MessageMeta
from tests.webui.conftest import WebServer, send, start
from tests.webui.test_account_api import _two_accounts


@pytest.fixture
async def web2(tmp_path: Path) -> AsyncIterator[WebServer]:
    async for s in start(tmp_path, edit_domains=_two_accounts):
        await set_password(s.ctx, "other", "otherpassword")
        yield s


def _html_message(subject: str) -> bytes:
    m = EmailMessage()
    m["From"] = "App <app@example.com>"
    m["To"] = "mox@localhost"
    m["Subject"] = subject
    m["Message-ID"] = f"<{subject.replace(' ', '-')}@example.com>"
    m.set_content("the text part\n")
    m.add_alternative('<p>Hello <b>there</b></p><script>alert(1)</script><img src="https://tracker.example/x.png">',
                      subtype="html")
    m.add_attachment(b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="invoice.pdf")
    return m.as_bytes().replace(b"\n", b"\r\n")


async def _store(web: WebServer, data: bytes, subject: str, account: str = "mox") -> int:
    file_id = await web.ctx.store.files.store(data)
    meta = MessageMeta(subject=subject, msg_from="app@example.com", rcpt_to_localpart="mox",
                       rcpt_to_domain="localhost")

    def write(conn: sqlite3.Connection) -> int:
        return insert_message(conn, account, "Inbox", file_id, len(data), meta=meta)

    return int(await web.ctx.store.write(write))


async def test_list_search_and_message_views(web2: WebServer) -> None:
    mox = await web2.account()
    mid = await _store(web2, _html_message("your invoice"), "your invoice")
    await _store(web2, _html_message("newsletter"), "newsletter")
    r = await mox.http.get(mox.base + "mail")
    assert r.status_code == 200
    assert r.text.index("newsletter") < r.text.index("your invoice")  # newest first
    r = await mox.http.get(mox.base + "mail", params={"q": "invoice"})
    assert "your invoice" in r.text and "newsletter" not in r.text
    r = await mox.http.get(mox.base + f"mail/{mid}")
    assert '<iframe class="html-part" sandbox=""' in r.text
    assert "the text part" in r.text
    assert f'href="/account/mail/{mid}/part/1?name=invoice.pdf" download="invoice.pdf"' in r.text
    assert "alert(1)" not in r.text  # the HTML is only in the frame
    html = await mox.http.get(mox.base + f"mail/{mid}/html")
    csp = html.headers["content-security-policy"]
    assert csp.startswith("sandbox;") and "default-src 'none'" in csp and "https:" not in csp
    assert "<script>alert(1)</script>" in html.text  # served as is, but it cannot run
    html = await mox.http.get(mox.base + f"mail/{mid}/html", params={"remote": "1"})
    assert "img-src data: http: https:" in html.headers["content-security-policy"]
    assert html.headers["content-security-policy"].startswith("sandbox;")
    raw = await mox.http.get(mox.base + f"mail/{mid}/raw")
    assert raw.headers["content-type"] == "text/plain; charset=utf-8" and "Subject: your invoice" in raw.text
    part = await mox.http.get(mox.base + f"mail/{mid}/part/1", params={"name": "invoice.pdf"})
    assert part.content == b"%PDF-1.4 fake"
    assert part.headers["content-type"] == "application/octet-stream"
    assert part.headers["content-disposition"] == "attachment; filename*=UTF-8''invoice.pdf"
    assert (await mox.http.get(mox.base + f"mail/{mid}/part/9")).status_code == 404


async def test_accounts_are_kept_apart(web2: WebServer) -> None:
    mid = await _store(web2, _html_message("for mox only"), "for mox only")
    other = await web2.account("other@localhost", "otherpassword")
    r = await other.http.get(other.base + "mail")
    assert "for mox only" not in r.text
    r = await other.http.get(other.base + f"mail/{mid}")
    assert r.status_code == 404 and "for mox only" not in r.text
    for p in ("html", "raw", "part/1"):
        r = await other.http.get(other.base + f"mail/{mid}/{p}")
        assert r.status_code == 404 and b"for mox only" not in r.content
    anon = web2.client("/account/")
    r = await anon.http.get(anon.base + f"mail/{mid}/raw")
    assert r.status_code == 403
    r = await anon.http.get(anon.base + "mail/events")
    assert r.status_code == 403


async def test_live_events_announce_new_mail(web2: WebServer) -> None:
    mox = await web2.account()
    before = await _store(web2, _html_message("old one"), "old one")
    url = mox.base + f"mail/events?after={before}"
    got: list[dict[str, object]] = []
    with trio.fail_after(20):
        async with mox.http.stream("GET", url) as resp:
            assert resp.headers["content-type"] == "text/event-stream"
            new = await _store(web2, _html_message("arrived while watching"), "arrived while watching")
            event = ""
            async for line in resp.aiter_lines():
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "message":
                    got.append(json.loads(line[6:]))
                    break
    assert got[0]["ID"] == new and got[0]["Subject"] == "arrived while watching"


async def test_sent_message_shows_deliveries_and_webhooks(web2: WebServer) -> None:
    from tests.webhooks.helpers import receiver

    async with receiver() as rec:
        mox = await web2.account()
        await mox.call("OutgoingWebhookSave", rec.url("/out"), "", [])
        qid = await send(web2, "mox@localhost", subject="sent to myself")
        await rec.wait(1, "/out")

        async def arrived() -> int:
            rows = await web2.ctx.store.read(
                lambda c: c.execute("SELECT id FROM messages WHERE subject = 'sent to myself'").fetchall()
            )
            return int(rows[0][0]) if rows else 0

        with trio.fail_after(20):
            while not (mid := await arrived()):
                await trio.sleep(0.05)
        r = await mox.http.get(mox.base + f"mail/{mid}")
        assert "Deliveries of this message" in r.text and f"queue {qid}, delivered" in r.text
        assert "delivered to " + rec.url("/out") in r.text


async def test_viewer_off_outside_localserve_unless_enabled(tmp_path: Path) -> None:
    from tests.support.inproc import localserve_config_dir, running_server

    directory, ip = localserve_config_dir(tmp_path)
    async with running_server(directory, localserve=False) as server:
        web = WebServer(server, ip, directory, [])
        await set_password(web.ctx, "mox", "moxmoxmox")
        try:
            mox = await web.account()
            r = await mox.http.get(mox.base + "mail")
            assert "not enabled" in r.text
            (directory / "plugins").mkdir(exist_ok=True)
            (directory / "plugins" / "webaccount.yaml").write_text("MailViewerAccounts: [mox]\n")
            # Settings files are re-read by the server's reloader, once a second.
            with trio.move_on_after(10):
                while 'id="mail-list"' not in (r := await mox.http.get(mox.base + "mail")).text:
                    await trio.sleep(0.1)
            assert 'id="mail-list"' in r.text
        finally:
            for c in web.clients:
                await c.aclose()
