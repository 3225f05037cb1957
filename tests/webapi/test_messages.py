"""Message methods over HTTP against messages in the store (and one delivered end to end)."""

from __future__ import annotations

import base64

import trio

from core.store.models import MessageMeta
from tests.webapi.conftest import WebapiServer

MSG = (
    b"From: =?utf-8?q?J=C3=B6hn?= <john@example.org>\r\n"
    b"To: mox@localhost, \"Other\" <other@xn--bcher-kva.example>\r\n"
    b"Subject: test =?utf-8?q?m=C3=A9ssage?=\r\n"
    b"Message-Id: <m1@example.org>\r\n"
    b"References: <r1@x>\t<r2@x>\r\n"
    b"In-Reply-To: <r0@x>\r\n"
    b"Date: Tue, 2 Jan 2024 03:04:05 +0100\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"h=C3=A9llo\r\n"
    b"--b1\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b'Content-Disposition: attachment; filename="bin.dat"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + base64.b64encode(b"\x00\x01\x02\x03") + b"\r\n"
    b"--b1--\r\n"
)


async def test_message_get(srv: WebapiServer) -> None:
    meta = MessageMeta(mail_from="john@example.org", mail_from_validated=True, rcpt_to_localpart="mox",
                       rcpt_to_domain="localhost", msg_from="john@example.org", remote_ip="127.0.0.9",
                       dkim_domains=["example.org"], msg_prefix=b"Received: from x by y\r\n")
    mid = await srv.store_message(MSG, meta=meta, flags=("\\seen", "$junk", "custom", "\\flagged", "$forwarded"))
    r = await srv.call("MessageGet", {"MsgID": mid})
    assert list(r) == ["Message", "Structure", "Meta"]
    m = r["Message"]
    assert m["From"] == [{"Name": "Jöhn", "Address": "john@example.org"}]
    assert m["To"] == [{"Name": "", "Address": "mox@localhost"}, {"Name": "Other", "Address": "other@bücher.example"}]
    assert m["CC"] == [] and m["BCC"] == [] and m["ReplyTo"] == []
    assert m["MessageID"] == "<m1@example.org>"
    assert m["References"] == ["<r0@x>", "<r1@x>", "<r2@x>"]
    assert m["Date"] == "2024-01-02T03:04:05+01:00"
    assert m["Subject"] == "test méssage" and m["Text"] == "héllo" and m["HTML"] == ""
    s = r["Structure"]
    assert s["ContentType"] == "multipart/mixed" and s["ContentTypeParams"] == {"boundary": "b1"}
    assert [p["ContentType"] for p in s["Parts"]] == ["text/plain", "application/octet-stream"]
    assert s["Parts"][1]["Filename"] == "bin.dat" and s["Parts"][1]["DecodedSize"] == 4
    assert r["Meta"] == {
        "Size": len(MSG), "DSN": False, "Flags": ["$forwarded", "$junk", "\\flagged", "\\seen", "custom"],
        "MailFrom": "john@example.org", "MailFromValidated": True, "RcptTo": "mox@localhost",
        "MsgFrom": "john@example.org", "MsgFromValidated": False, "DKIMVerifiedDomains": ["example.org"],
        "RemoteIP": "127.0.0.9", "MailboxName": "Inbox",
    }
    # A message without Date reports null.
    mid2 = await srv.store_message(b"Subject: x\r\n\r\nbody\r\n")
    r = await srv.call("MessageGet", {"MsgID": mid2})
    assert r["Message"]["Date"] is None and r["Message"]["From"] == []


async def test_raw_and_part_get(srv: WebapiServer) -> None:
    mid = await srv.store_message(MSG, meta=MessageMeta(msg_prefix=b"X-Prefix: 1\r\n"))
    r = await srv.post("MessageRawGet", {"MsgID": mid})
    assert r.status_code == 200 and r.headers["content-type"] == "text/plain"
    assert r.content == b"X-Prefix: 1\r\n" + MSG
    r = await srv.post("MessagePartGet", {"MsgID": mid, "PartPath": [0]})
    assert (r.content, r.headers["content-type"]) == ("héllo".encode(), "text/plain; charset=utf-8")
    r = await srv.post("MessagePartGet", {"MsgID": mid, "PartPath": [1]})
    assert (r.content, r.headers["content-type"]) == (b"\x00\x01\x02\x03", "application/octet-stream")
    r = await srv.post("MessagePartGet", {"MsgID": mid, "PartPath": []})
    assert r.content.startswith(b"--b1\r\n")
    assert await srv.error("MessagePartGet", {"MsgID": mid, "PartPath": [9]}) == ("partNotFound", "part 9 at index 0 not found")
    assert await srv.error("MessagePartGet", {"MsgID": mid, "PartPath": [0, -1]}) == ("partNotFound", "part -1 at index 1 not found")
    for method in ("MessageRawGet", "MessagePartGet", "MessageGet"):
        assert await srv.error(method, {"MsgID": 999}) == ("messageNotFound", "message not found")


async def test_flags_move_delete(srv: WebapiServer) -> None:
    mid = await srv.store_message(MSG)
    assert await srv.call("MessageFlagsAdd", {"MsgID": mid, "Flags": ["\\Seen", "CUSTOM", "$Junk"]}) == {}
    assert (await srv.call("MessageGet", {"MsgID": mid}))["Meta"]["Flags"] == ["$junk", "\\seen", "custom"]
    assert await srv.call("MessageFlagsRemove", {"MsgID": mid, "Flags": ["custom", "\\SEEN"]}) == {}
    assert (await srv.call("MessageGet", {"MsgID": mid}))["Meta"]["Flags"] == ["$junk"]
    assert await srv.call("MessageFlagsAdd", {"MsgID": mid, "Flags": []}) == {}
    for bad in ("bad flag", "\\recent", "\\unknownsys", ""):
        code, msg = await srv.error("MessageFlagsAdd", {"MsgID": mid, "Flags": [bad]})
        assert code == "user" and msg == f"parsing flags: invalid keyword {bad.lower()}"
    assert await srv.error("MessageMove", {"MsgID": mid, "DestMailboxName": "inbox"}) == ("user", "looking up mailbox name: not found")
    assert await srv.error("MessageMove", {"MsgID": mid, "DestMailboxName": "Inbox"}) == (
        "user", f"moving message: message {mid} already in destination mailbox")
    assert await srv.call("MessageMove", {"MsgID": mid, "DestMailboxName": "Archive"}) == {}
    meta = (await srv.call("MessageGet", {"MsgID": mid}))["Meta"]
    assert meta["MailboxName"] == "Archive"
    # Automatic junk flags (localserve: ^(junk|spam) is junk, not-junk otherwise).
    assert meta["Flags"] == ["$notjunk"]
    assert await srv.call("MessageMove", {"MsgID": mid, "DestMailboxName": "Junk"}) == {}
    assert (await srv.call("MessageGet", {"MsgID": mid}))["Meta"]["Flags"] == ["$junk"]
    assert await srv.call("MessageDelete", {"MsgID": mid}) == {}
    assert await srv.error("MessageGet", {"MsgID": mid}) == ("messageNotFound", "message not found")
    for method, extra in (("MessageDelete", {}), ("MessageFlagsAdd", {"Flags": ["x"]}),
                          ("MessageFlagsRemove", {"Flags": ["x"]}), ("MessageMove", {"DestMailboxName": "Inbox"})):
        assert await srv.error(method, {"MsgID": mid, **extra}) == ("user", "getting message: message was removed")
        assert await srv.error(method, {"MsgID": 0, **extra}) == ("user", "getting message: invalid zero message id")
        assert await srv.error(method, {"MsgID": 12345, **extra}) == ("messageNotFound", "getting message: no such message")


async def test_delivered_message_end_to_end(srv: WebapiServer) -> None:
    """Send to ourselves; localserve delivers it to the Inbox; read it back."""
    res = await srv.call("Send", {"To": [{"Address": "mox@localhost"}], "Subject": "round trip", "Text": "hi"})
    from core.store.messages import list_messages

    with trio.fail_after(10):
        while True:
            msgs = await srv.ctx.store.read(lambda c: list_messages(c, "mox", "Inbox"))
            if msgs:
                break
            await trio.sleep(0.05)
    got = await srv.call("MessageGet", {"MsgID": msgs[0].id})
    assert got["Message"]["MessageID"] == res["MessageID"]
    assert got["Message"]["Subject"] == "round trip" and got["Message"]["Text"] == "hi\n"
    assert got["Meta"]["MailboxName"] == "Inbox" and got["Meta"]["RcptTo"] == "mox@localhost"
    raw = (await srv.post("MessageRawGet", {"MsgID": msgs[0].id})).content
    assert b"Received: from localhost by localhost" in raw
