"""Send over real HTTP: the composed message read back from the queue and parsed with
the stdlib ``email`` package, every error code Send answers, fromid, limits, SaveSent."""

from __future__ import annotations

import base64
import email
import email.policy
import re
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.webapi.conftest import WebapiServer, add_account_settings, start

LATER = (datetime.now(UTC) + timedelta(hours=1)).replace(microsecond=0)
LATER_S = LATER.strftime("%Y-%m-%dT%H:%M:%SZ")
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)


def parse(data: bytes) -> EmailMessage:
    msg = email.message_from_bytes(data, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def raw_header(data: bytes, name: str) -> str:
    """The first raw header value (unfolded, undecoded), as written by the composer."""
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    for field in re.split(r"\r\n(?![ \t])", head):
        k, _, v = field.partition(":")
        if k.lower() == name.lower():
            return re.sub(r"\r\n[ \t]", " ", v).strip()
    raise KeyError(name)


def text(part: Any) -> str:
    """Decoded text content with line endings normalised (8bit parts keep CRLF in email)."""
    return str(part.get_content()).replace("\r\n", "\n")


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and not line[0].isspace()]


async def send_held(srv: WebapiServer, req: dict[str, Any], **kw: Any) -> tuple[dict[str, Any], list[tuple[Any, bytes]]]:
    """Send with FutureRelease an hour ahead so the entries stay queued for inspection."""
    req = {"FutureRelease": LATER_S, **req}
    res = await srv.call("Send", req, **kw)
    return res, [await srv.queued(s["QueueMsgID"]) for s in res["Submissions"]]


async def test_send_minimal_composes_like_mox(srv: WebapiServer) -> None:
    res, [(entry, data)] = await send_held(
        srv, {"To": [{"Address": "mox@localhost"}], "Subject": "hello one", "Text": "hi ☺",
              "Extra": {"userid": "123"}}
    )
    assert re.fullmatch(r"<[A-Za-z0-9_-]{22}@localhost>", res["MessageID"])
    assert res["Submissions"] == [{"Address": "mox@localhost", "QueueMsgID": entry.id, "FromID": ""}]
    assert header_names(data) == [
        "Received", "DKIM-Signature", "From", "To", "Subject", "Date", "Message-Id", "MIME-Version", "User-Agent",
        "Content-Type", "Content-Transfer-Encoding",
    ]
    assert re.match(
        rb"Received: from localhost by localhost id [A-Za-z0-9_-]{22} for\r\n\t<mox@localhost>; \d{1,2} \w{3} \d{4} ",
        data,
    )
    m = parse(data)
    assert b"\r\nFrom: <mox@localhost>\r\nTo: <mox@localhost>\r\n" in data
    assert m["From"].addresses[0].addr_spec == "mox@localhost"
    assert m["Subject"] == "hello one"
    assert raw_header(data, "Message-Id") == res["MessageID"]
    assert raw_header(data, "MIME-Version") == "1.0"
    assert raw_header(data, "User-Agent").startswith("moxtrio/")
    assert raw_header(data, "Content-Type") == "text/plain; charset=utf-8"
    assert raw_header(data, "Content-Transfer-Encoding") == "8bit"
    assert text(m) == "hi ☺\n"
    assert re.fullmatch(r"\d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}", raw_header(data, "Date"))
    assert m["Bcc"] is None
    # Queue entry fields.
    assert entry.sender_address == "mox@localhost" and entry.recipient == "mox@localhost"
    assert entry.message_id == res["MessageID"] and entry.subject == "hello one"
    assert entry.extra == {"userid": "123"} and entry.require_tls is None
    assert entry.future_release_request == "until;" + LATER_S
    assert entry.next_attempt == LATER
    assert entry.has8bit and not entry.smtputf8
    assert entry.size == len(data)
    assert data.startswith(entry.msg_prefix) and entry.msg_prefix.startswith(b"Received: ")


async def test_send_full_headers_and_mime(srv: WebapiServer) -> None:
    req = {
        "From": [{"Name": "Mox Sender", "Address": "mox+news@localhost"}],
        "To": [{"Name": "John Q. Public", "Address": "plain@other.example"},
               {"Name": "Jöhn \"The\" Dœ", "Address": "ascii@other.example"}],
        "CC": [{"Name": "Jöhn", "Address": "cc@other.example"}],
        "BCC": [{"Name": "Hidden", "Address": "bcc1@other.example"}],
        "ReplyTo": [{"Address": "reply@localhost"}],
        "MessageID": "<custom-id@localhost>",
        "References": ["<a@x>", "<b@x>"],
        "Date": "2024-01-02T03:04:05+01:00",
        "Subject": "Grüße aus Köln – a subject",
        "Text": "plain text\n",
        "HTML": "<p>html</p>",
        "Headers": [["X-Custom", "value 1"], ["X-Mailer", "my app"], ["A"]],
        "AlternativeFiles": [{"Name": "cal.ics", "ContentType": "text/calendar", "Data": base64.b64encode(b"BEGIN:VCALENDAR").decode()}],
        "InlineFiles": [{"Name": "x.txt", "ContentID": "<x1>", "Data": base64.b64encode(b"hello").decode()}],
        "AttachedFiles": [
            {"Name": "img.png", "ContentType": "image/png", "Data": base64.b64encode(PNG).decode()},
            {"Name": "résumé final.txt", "Data": base64.b64encode(PNG).decode()},
            {"Name": "blob", "Data": base64.b64encode(b"\x00\x01\x02").decode()},
        ],
        "RequireTLS": False,
    }
    res, items = await send_held(srv, req)
    assert [s["Address"] for s in res["Submissions"]] == [
        "plain@other.example", "ascii@other.example", "cc@other.example", "bcc1@other.example"]
    assert res["MessageID"] == "<custom-id@localhost>"
    datas = [d for _, d in items]
    # One prefix for all recipients of a multi-recipient send ("for <>").
    assert all(b"for <>;" in d.split(b"\r\nFrom:", 1)[0] for d in datas)
    assert len({d for d in datas}) == 1
    entries = [e for e, _ in items]
    assert all(e.require_tls is False for e in entries)
    assert len({e.base_id for e in entries}) == 1
    data = datas[0]
    assert header_names(data) == [
        "Received", "DKIM-Signature", "From", "Reply-To", "To", "Cc", "Subject", "Date", "Message-Id", "References",
        "In-Reply-To", "MIME-Version", "X-Custom", "X-Mailer", "A", "Content-Type",
    ]
    assert b'\r\nFrom: "Mox Sender" <mox+news@localhost>\r\n' in data
    assert b"\r\nTo: \"John Q. Public\" <plain@other.example>,\r\n\t=?utf-8?b?" in data
    assert b"\r\nDate: 2 Jan 2024 03:04:05 +0100\r\n" in data
    assert b"\r\nReferences: <a@x>\r\n\t<b@x>\r\nIn-Reply-To: <b@x>\r\n" in data
    assert b"\r\nA: \r\n" in data
    m = parse(data)
    assert m["To"].addresses[1].display_name == 'Jöhn "The" Dœ'
    assert m["Cc"].addresses[0].display_name == "Jöhn"
    assert b"\r\nReply-To: <reply@localhost>\r\n" in data
    assert str(m["Subject"]) == "Grüße aus Köln – a subject"
    assert m["X-Custom"] == "value 1" and m["X-Mailer"] == "my app" and m["User-Agent"] is None
    assert m["Bcc"] is None and b"bcc1@other.example" not in data
    # MIME tree as mox's Send builds it.
    assert m.get_content_type() == "multipart/mixed"
    mixed = list(m.iter_parts())
    related = mixed[0]
    assert related.get_content_type() == "multipart/related"
    rel = list(related.iter_parts())
    alt = list(rel[0].iter_parts())
    assert [p.get_content_type() for p in alt] == ["text/plain", "text/html", "text/calendar"]
    assert text(alt[0]) == "plain text\n" and text(alt[1]) == "<p>html</p>\n"
    assert alt[2].get_content_disposition() == "inline" and alt[2].get_filename() == "cal.ics"
    assert rel[1]["Content-Id"] == "<x1>" and rel[1].get_content_type() == "text/plain"
    assert rel[1].get_content() == "hello"
    att = mixed[1:]
    assert [p.get_content_type() for p in att] == ["image/png", "image/png", "application/octet-stream"]
    assert [p.get_filename() for p in att] == ["img.png", "résumé final.txt", "blob"]
    assert all(p.get_content_disposition() == "attachment" for p in att)
    assert att[0].get_content() == PNG
    boundary = m.get_boundary()
    assert boundary is not None and re.fullmatch(r"[0-9a-f]{60}", boundary)


async def test_send_defaults_from_fullname_and_login(tmp_path: Path) -> None:
    async for srv in start(tmp_path, edit_domains=add_account_settings("FullName: Mox Full")):
        res, [(entry, data)] = await send_held(
            srv, {"To": [{"Address": "mox@localhost"}], "HTML": "<b>x</b>"},
            auth=("MOX+APP@LOCALHOST", "moxmoxmox"),
        )
        m = parse(data)
        assert b'\r\nFrom: "Mox Full" <MOX+APP@localhost>\r\n' in data
        assert m["From"].addresses[0].display_name == "Mox Full"
        assert raw_header(data, "Content-Type") == "text/html; charset=us-ascii"
        assert raw_header(data, "Content-Transfer-Encoding") == "7bit"
        assert entry.sender_address == "MOX+APP@localhost"


async def test_send_smtputf8_and_qp(srv: WebapiServer) -> None:
    long_line = "x" * 100
    res, [(entry, data)] = await send_held(
        srv, {"To": [{"Address": "møx@other.example"}], "Subject": "Grüße", "Text": long_line}
    )
    assert entry.smtputf8 and entry.has8bit
    m = parse(data)
    assert "Subject: Grüße\r\n" in data.decode()
    assert raw_header(data, "Content-Transfer-Encoding") == "quoted-printable"
    assert text(m) == long_line + "\n"


async def test_send_fromid(tmp_path: Path) -> None:
    edit = add_account_settings("FromIDLoginAddresses:\n\t- mox+app@localhost")
    async for srv in start(tmp_path, edit_domains=edit):
        res, items = await send_held(
            srv,
            {"From": [{"Address": "mox+zzz@localhost"}],
             "To": [{"Address": "mox@localhost"}, {"Address": "other@other.example"}], "Text": "x"},
            auth=("mox+app@localhost", "moxmoxmox"),
        )
        for sub, (entry, _) in zip(res["Submissions"], items, strict=True):
            assert re.fullmatch(r"[A-Za-z0-9_-]{22}", sub["FromID"])
            assert entry.from_id == sub["FromID"]
            assert entry.sender_address == f"mox+{sub['FromID']}@localhost"
        # Not logged in with the fromid address: no fromid, MAIL FROM = From.
        res, [(entry, _)] = await send_held(
            srv, {"From": [{"Address": "mox+custom@localhost"}], "To": [{"Address": "mox@localhost"}], "Text": "x"}
        )
        assert res["Submissions"][0]["FromID"] == "" and entry.sender_address == "mox+custom@localhost"


async def test_send_errors(srv: WebapiServer) -> None:
    to = [{"Address": "mox@localhost"}]
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"To": to}, "missingBody", "at least text or html body required"),
        ({"From": [{"Address": "mox@localhost"}] * 2, "To": to, "Text": "x"}, "multipleFrom", "multiple from-addresses not allowed"),
        ({"From": [{"Address": "other@elsewhere.example"}], "To": to, "Text": "x"}, "badFrom", "from-address not configured for account"),
        ({"To": [{"Address": "bad address"}], "Text": "x"}, "badAddress", 'parsing address "bad address"'),
        ({"To": [{"Address": "a@[1.2.3.4]"}], "Text": "x"}, "badAddress", "parsing address"),
        ({"Text": "x"}, "noRecipients", "no recipients"),
        ({"To": to, "Text": "x", "MessageID": "no-brackets@x"}, "malformedMessageID", "missing <> in message-id"),
        ({"To": to, "Text": "x", "AttachedFiles": [{"Data": "!!!"}]}, "user", "parsing attachment as base64: illegal base64 data at input byte 0"),
        ({"To": to, "Text": "x", "AttachedFiles": [{"Data": "aGk"}]}, "user", "illegal base64"),
        ({"To": to, "Text": "x", "FutureRelease": (datetime.now(UTC) + timedelta(days=61)).strftime("%Y-%m-%dT%H:%M:%SZ")},
         "user", "scheduling delivery: date/time can not be further than 1440h0m0s in the future"),
    ]
    for req, code, message in cases:
        got = await srv.error("Send", req)
        assert got[0] == code and message in got[1], (req, got)
    n = await srv.ctx.queue.count()
    assert n == 0


async def test_send_header_injection_refused(srv: WebapiServer) -> None:
    """CR/LF (and other control characters) in anything that becomes a header: 400 user."""
    to = [{"Address": "mox@localhost"}]
    bad = "x\r\nBcc: evil@example.com"
    cases = [
        {"To": [{"Name": bad, "Address": "mox@localhost"}], "Text": "x"},
        {"From": [{"Name": "a\nb", "Address": "mox@localhost"}], "To": to, "Text": "x"},
        {"To": to, "CC": [{"Name": "\r", "Address": "x@y.example"}], "Text": "x"},
        {"To": to, "BCC": [{"Name": "\t", "Address": "x@y.example"}], "Text": "x"},
        {"To": to, "ReplyTo": [{"Name": bad, "Address": "x@y.example"}], "Text": "x"},
        {"To": to, "Subject": bad, "Text": "x"},
        {"To": to, "MessageID": "<a\r\nb@x>", "Text": "x"},
        {"To": to, "References": [bad], "Text": "x"},
        {"To": to, "Headers": [["X-A", bad]], "Text": "x"},
        {"To": to, "Headers": [["X-A\r\nBcc", "v"]], "Text": "x"},
        {"To": to, "Headers": [["Bad Name", "v"]], "Text": "x"},
        {"To": to, "AttachedFiles": [{"ContentType": "text/plain\r\nX: y", "Data": ""}], "Text": "x"},
        {"To": to, "InlineFiles": [{"ContentID": "<a>\r\nX: y", "Data": ""}], "Text": "x"},
    ]
    for req in cases:
        code, _ = await srv.error("Send", req)
        assert code == "user", req
    # Addresses with line breaks do not parse at all.
    for addr in ["a@b.example\r\nBcc: e@x.example", '"a\r\nb"@x.example']:
        code, _ = await srv.error("Send", {"To": [{"Address": addr}], "Text": "x"})
        assert code == "badAddress"
    # A filename with CR/LF is written RFC 2231-encoded, never as a raw line break.
    res, [(_, data)] = await send_held(
        srv, {"To": to, "Text": "x", "AttachedFiles": [{"Name": "a\r\nX-Evil: 1", "Data": "aGk="}]}
    )
    assert b"\r\nX-Evil" not in data
    assert await srv.ctx.queue.count() == 1


async def test_send_uploads_every_form(srv: WebapiServer) -> None:
    req = {"To": [{"Address": "mox@localhost"}], "Text": "body", "FutureRelease": LATER_S,
           "InlineFiles": [{"Name": "json.txt", "Data": base64.b64encode(b"json inline").decode()}]}
    files = [
        ("alternativefile", ("alt.txt", b"alternative text", "text/plain")),
        ("inlinefile", ("hi.png", PNG, "image/png", {"Content-ID": "<hi>"})),
        ("attachedfile", ("data.bin", b"\x00\x01binary", "application/octet-stream")),
        ("attachedfile", ("notes.txt", b"some notes", "text/plain")),
        ("ignoredfield", ("x.txt", b"ignored", "text/plain")),
    ]
    res = await srv.call("Send", req, files=files)
    _, data = await srv.queued(res["Submissions"][0]["QueueMsgID"])
    m = parse(data)
    mixed = list(m.iter_parts())
    rel = list(mixed[0].iter_parts())
    alt = list(rel[0].iter_parts())
    assert [p.get_content_type() for p in alt] == ["text/plain", "text/plain"]
    assert alt[1].get_filename() == "alt.txt" and alt[1].get_content() == "alternative text"
    assert [p.get_filename() for p in rel[1:]] == ["json.txt", "hi.png"]
    assert rel[2]["Content-Id"] == "<hi>" and rel[2].get_content() == PNG
    assert [(p.get_filename(), p.get_content_type()) for p in mixed[1:]] == [
        ("data.bin", "application/octet-stream"), ("notes.txt", "text/plain")]
    assert mixed[1].get_content() == b"\x00\x01binary"
    assert b"ignored" not in data
    # An upload without Content-Type is sniffed.
    res = await srv.call("Send", req, files=[("attachedfile", ("p", PNG, ""))])
    _, data = await srv.queued(res["Submissions"][0]["QueueMsgID"])
    assert list(parse(data).iter_parts())[1].get_content_type() == "image/png"


async def test_send_message_too_large(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text.replace("\t\tSMTP:\n\t\t\tEnabled: true\n", "\t\tSMTPMaxMessageSize: 3000\n\t\tSMTP:\n\t\t\tEnabled: true\n", 1)

    async for srv in start(tmp_path, edit_mox=edit):
        code, msg = await srv.error("Send", {"To": [{"Address": "mox@localhost"}], "Text": "x" * 4000})
        assert (code, msg) == ("messageTooLarge", "message too large")
        code, _ = await srv.error(
            "Send", {"To": [{"Address": "mox@localhost"}], "Text": "x"},
            files=[("attachedfile", ("big.bin", b"\0" * 2500, "application/octet-stream"))],
        )
        assert code == "messageTooLarge"
        # Just under the limit is fine.
        await srv.call("Send", {"To": [{"Address": "mox@localhost"}], "Text": "x" * 2000, "FutureRelease": LATER_S})


async def test_send_daily_limits_count_webapi_sends(tmp_path: Path) -> None:
    edit = add_account_settings("MaxOutgoingMessagesPerDay: 3\nMaxFirstTimeRecipientsPerDay: 2")
    async for srv in start(tmp_path, edit_domains=edit):
        base = {"Text": "x", "FutureRelease": LATER_S}
        await srv.call("Send", {**base, "To": [{"Address": "a@x.example"}]})
        code, _ = await srv.error("Send", {**base, "To": [{"Address": "b@x.example"}, {"Address": "c@x.example"}]})
        assert code == "recipientLimitReached"
        await srv.call("Send", {**base, "To": [{"Address": "a@x.example"}]})
        await srv.call("Send", {**base, "To": [{"Address": "a@x.example"}]})
        code, msg = await srv.error("Send", {**base, "To": [{"Address": "a@x.example"}]})
        assert (code, msg) == ("messageLimitReached", "outgoing message rate limit reached")


async def test_send_savesent(srv: WebapiServer) -> None:
    res = await srv.call("Send", {
        "To": [{"Address": "mox@localhost"}], "BCC": [{"Name": "Hidden", "Address": "bcc1@localhost"}],
        "Subject": "saved", "Text": "keep me", "SaveSent": True, "FutureRelease": LATER_S})
    from core.store.messages import list_messages

    msgs = await srv.ctx.store.read(lambda c: list_messages(c, "mox", "Sent"))
    assert len(msgs) == 1
    got = await srv.call("MessageGet", {"MsgID": msgs[0].id})
    assert got["Meta"]["Flags"] == ["$notjunk", "\\seen"]
    assert got["Meta"]["MailboxName"] == "Sent" and got["Meta"]["MailFrom"] == ""
    assert got["Message"]["BCC"] == [{"Name": "Hidden", "Address": "bcc1@localhost"}]
    assert got["Message"]["MessageID"] == res["MessageID"] and got["Message"]["Text"] == "keep me\n"
    raw = (await srv.post("MessageRawGet", {"MsgID": msgs[0].id})).content
    assert raw.startswith(b'Bcc: "Hidden" <bcc1@localhost>\r\nDKIM-Signature: ')
    assert b"Received:" not in raw


async def test_sent_copy_outlives_the_delivered_queue_entry(srv: WebapiServer) -> None:
    """The Sent copy shares the queued message's file: retiring the delivered
    entry must not remove the file while the Sent copy still references it."""
    import trio

    from core.store.messages import list_messages

    res = await srv.call("Send", {"To": [{"Address": "mox@localhost"}], "Subject": "shared",
                                  "Text": "still here", "SaveSent": True})
    qid = res["Submissions"][0]["QueueMsgID"]
    with trio.fail_after(15):
        while await srv.ctx.store.read(lambda c: c.execute("select 1 from queue where id = ?", (qid,)).fetchone()):
            await trio.sleep(0.05)
    sent = await srv.ctx.store.read(lambda c: list_messages(c, "mox", "Sent"))
    raw = (await srv.post("MessageRawGet", {"MsgID": sent[0].id})).content
    assert raw.endswith(b"still here\r\n") and b"Subject: shared" in raw
    await srv.ctx.store.check_files()  # start-up consistency check keeps the shared file
    assert sent[0].file_id in await trio.to_thread.run_sync(srv.ctx.store.files.list_ids_sync)
