"""Suppression methods through the hook (with and without a plugin answering) and the
typed Python client, sync and async, against a running server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from plugins.webapi.client import AsyncClient, Client, HTTPError, UploadFile, WebapiError
from plugins.webapi.types import File, NameAddress, SendRequest, Suppression
from tests.webapi.conftest import AUTH, WebapiServer, start


async def test_suppression_roundtrip(srv: WebapiServer) -> None:
    assert await srv.call("SuppressionList") == {"Suppressions": []}
    assert await srv.call("SuppressionAdd", {"EmailAddress": "John.Doe+news@Example.COM", "Reason": "r"}) == {}
    got = (await srv.call("SuppressionList"))["Suppressions"]
    assert len(got) == 1 and list(got[0]) == list(Suppression.__dataclass_fields__)
    assert got[0]["BaseAddress"] == "johndoe@example.com" and got[0]["Manual"] is False
    assert await srv.call("SuppressionPresent", {"EmailAddress": "johndoe-x@example.com"}) == {"Present": True}
    assert (await srv.error("SuppressionAdd", {"EmailAddress": "johndoe@example.com"}))[0] == "error"
    assert await srv.call("SuppressionRemove", {"EmailAddress": "JOHNDOE+other@example.com"}) == {}
    assert (await srv.error("SuppressionRemove", {"EmailAddress": "johndoe@example.com"}))[0] == "error"
    assert await srv.call("SuppressionPresent", {"EmailAddress": "johndoe@example.com"}) == {"Present": False}
    for method in ("SuppressionAdd", "SuppressionRemove", "SuppressionPresent"):
        code, msg = await srv.error(method, {"EmailAddress": "user@[1.2.3.4]"})
        assert code == "badAddress" and msg.startswith("parsing address")


async def test_suppression_without_plugin(tmp_path: Path) -> None:
    def edit(text: str) -> str:
        return text.replace("Listeners:\n", "Plugins:\n\t- webapi\n\t- localserve\nListeners:\n", 1)

    async for srv in start(tmp_path, edit_mox=edit):
        code, msg = await srv.error("SuppressionList")
        assert code == "server" and "no plugin offers them" in msg
        code, _ = await srv.error("SuppressionPresent", {"EmailAddress": "a@b.example"})
        assert code == "server"


def _sync_client_session(url: str) -> list[object]:
    out: list[object] = []
    with Client(url, *AUTH) as c:
        res = c.send(
            SendRequest(To=[NameAddress(Address="mox@localhost")], Subject="from client", Text="hi",
                        AttachedFiles=[File(Name="a.txt", Data="aGk=")],
                        FutureRelease=datetime.now(UTC) + timedelta(hours=1)),
            files=[UploadFile("b.txt", b"upload", "text/plain", kind="attached")],
        )
        out.append(res)
        out.append(c.suppression_list())
        try:
            c.message_get(424242)
        except WebapiError as exc:
            out.append(exc.code)
    with Client(url, "mox@localhost", "wrong") as c:
        try:
            c.suppression_list()
        except HTTPError as exc:
            out.append(exc.status)
    return out


async def test_clients(srv: WebapiServer) -> None:
    res, sl, code, status = await trio.to_thread.run_sync(_sync_client_session, srv.v0)
    assert res.MessageID.startswith("<") and res.Submissions[0].Address == "mox@localhost"  # type: ignore[attr-defined]
    assert sl.Suppressions == []  # type: ignore[attr-defined]
    assert (code, status) == ("messageNotFound", 401)
    entry = await srv.ctx.queue.get(res.Submissions[0].QueueMsgID)  # type: ignore[attr-defined]
    assert entry.subject == "from client"
    async with AsyncClient(srv.v0, *AUTH) as ac:
        mid = await srv.store_message(b"Subject: async\r\n\r\nbody\r\n")
        got = await ac.message_get(mid)
        assert got.Message.Subject == "async" and got.Meta.MailboxName == "Inbox"
        assert await ac.message_raw_get(mid) == b"Subject: async\r\n\r\nbody\r\n"
        assert await ac.message_part_get(mid, []) == b"body\r\n"
        await ac.message_flags_add(mid, ["\\Seen", "kw"])
        await ac.message_flags_remove(mid, ["kw"])
        assert (await ac.message_get(mid)).Meta.Flags == ["\\seen"]
        await ac.message_move(mid, "Archive")
        await ac.suppression_add("x@example.com", manual=True, reason="test")
        assert (await ac.suppression_present("x@example.com")).Present is True
        assert (await ac.suppression_list()).Suppressions[0].Manual is True
        await ac.suppression_remove("x@example.com")
        await ac.message_delete(mid)
        try:
            await ac.message_delete(mid)
        except WebapiError as exc:
            assert exc.code == "user"
        else:
            raise AssertionError("expected an error")
        r = await ac.send(SendRequest(To=[NameAddress(Address="mox@localhost")], Text="x", SaveSent=False))
        assert len(r.Submissions) == 1
