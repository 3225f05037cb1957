"""Suppression methods through the core's SuppressionProvider (the suppression
plugin's, none, or another plugin's) and the
typed Python client, sync and async, against a running server."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trio

from moxtrio import (
    ExportPage,
    ExportQuery,
    ImportRequest,
    PluginContext,
    ServiceError,
    SuppressionProvider,
    hookimpl,
)
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


class MemoryLists:
    """A SuppressionProvider of a third party: exact addresses in memory, nothing else."""

    def __init__(self) -> None:
        self.entries: dict[tuple[str, str], Entry] = {}

    async def list_suppressions(self, account: str) -> list[Entry]:
        return [e for (acc, _), e in sorted(self.entries.items()) if acc == account]

    async def add_suppression(self, account: str, address: str, *, manual: bool, reason: str) -> None:
        if (account, address) in self.entries:
            raise ServiceError("error", "already listed")
        self.entries[account, address] = Entry(
            len(self.entries) + 1, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), account, address, address,
            manual, reason)

    async def remove_suppression(self, account: str, address: str) -> None:
        if self.entries.pop((account, address), None) is None:
            raise ServiceError("error", "absent")

    async def is_suppressed(self, account: str, address: str) -> bool:
        return (account, address) in self.entries

    async def export_suppressions(self, account: str, query: ExportQuery) -> ExportPage:
        raise ServiceError("user", "no export here")

    async def import_suppressions(self, account: str, request: ImportRequest) -> int:
        raise ServiceError("user", "no import here")


@dataclass(frozen=True)
class Entry:
    id: int
    created: datetime
    account: str
    base_address: str
    original_address: str
    manual: bool
    reason: str


class MemoryListsPlugin:
    @hookimpl
    def moxtrio_configure(self, ctx: PluginContext) -> None:
        ctx.provide(SuppressionProvider, MemoryLists())  # type: ignore[type-abstract]


async def test_suppression_from_another_provider(tmp_path: Path) -> None:
    """The webapi answers from whichever plugin provides SuppressionProvider."""
    def edit(text: str) -> str:
        return text.replace("Listeners:\n", "Plugins:\n\t- webapi\n\t- localserve\nListeners:\n", 1)

    async for srv in start(tmp_path, edit_mox=edit, extra_plugins=[MemoryListsPlugin()]):
        assert await srv.call("SuppressionAdd", {"EmailAddress": "a@example.org", "Manual": True, "Reason": "r"}) == {}
        assert await srv.call("SuppressionPresent", {"EmailAddress": "a@example.org"}) == {"Present": True}
        [got] = (await srv.call("SuppressionList"))["Suppressions"]
        assert (got["ID"], got["Account"], got["BaseAddress"], got["Manual"], got["Reason"]) == (
            1, "mox", "a@example.org", True, "r")
        assert await srv.error("SuppressionAdd", {"EmailAddress": "a@example.org"}) == ("error", "already listed")
        assert await srv.call("SuppressionRemove", {"EmailAddress": "a@example.org"}) == {}
        assert await srv.error("SuppressionRemove", {"EmailAddress": "a@example.org"}) == ("error", "absent")
        r = await srv.http.post(srv.v0 + "SuppressionExport", auth=AUTH, json={})
        assert r.status_code == 400 and r.json()["Code"] == "user", r.text
