"""Suppression lists through the webapi over HTTP: each account sees and
changes only its own list; a send to a suppressed address fails at once."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from core.accounts import set_password
from core.runtime import Server
from core.store.queue_rows import QueueEntryNotFound
from tests.support.inproc import localserve_config_dir, running_server

SECOND_ACCOUNT = """\tother:
\t\tDomain: localhost
\t\tKeepRetiredMessagePeriod: 1h0m0s
\t\tDestinations:
\t\t\tother@localhost: nil
"""


def add_second_account(text: str) -> str:
    return text.replace("Accounts:\n", "Accounts:\n" + SECOND_ACCOUNT, 1)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    directory, _ = localserve_config_dir(tmp_path, edit_domains=add_second_account)
    async with running_server(directory) as srv:
        await set_password(srv.ctx, "other", "otherpass")  # type: ignore[arg-type]
        yield srv


async def call(server: Server, method: str, request: dict[str, object], auth: tuple[str, str]) -> httpx.Response:
    ip = server.config.static.Listeners["local"].IPs[0]
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(f"http://{ip}:1080/webapi/v0/{method}", data={"request": json.dumps(request)}, auth=auth)


MOX = ("mox@localhost", "moxmoxmox")
OTHER = ("other@localhost", "otherpass")


async def test_accounts_are_isolated_over_http(server: Server) -> None:
    r = await call(server, "SuppressionAdd", {"EmailAddress": "Jane.Doe+x@example.org", "Manual": True, "Reason": "asked"}, MOX)
    assert r.status_code == 200, r.text
    mine = (await call(server, "SuppressionList", {}, MOX)).json()["Suppressions"]
    assert [(s["Account"], s["BaseAddress"], s["Manual"], s["Reason"]) for s in mine] == [
        ("mox", "janedoe@example.org", True, "asked")]
    assert (await call(server, "SuppressionList", {}, OTHER)).json() == {"Suppressions": []}
    present = await call(server, "SuppressionPresent", {"EmailAddress": "janedoe@example.org"}, OTHER)
    assert present.json() == {"Present": False}
    # The other account cannot remove mox's entry (it is absent from its own list).
    r = await call(server, "SuppressionRemove", {"EmailAddress": "janedoe@example.org"}, OTHER)
    assert r.status_code == 400 and r.json()["Code"] == "error"
    assert (await call(server, "SuppressionPresent", {"EmailAddress": "jane.doe@example.org"}, MOX)).json() == {"Present": True}


async def retired_entry(server: Server, qid: int) -> object:
    ctx = server.ctx
    assert ctx is not None
    with trio.fail_after(10):
        while True:
            try:
                return await ctx.queue.get_retired(qid)
            except QueueEntryNotFound:
                await trio.sleep(0.05)


async def test_send_to_suppressed_address_fails_without_attempt(server: Server) -> None:
    r = await call(server, "SuppressionAdd", {"EmailAddress": "blocked@example.org"}, MOX)
    assert r.status_code == 200
    sent = await call(server, "Send", {"To": [{"Address": "Blocked+tag@example.org"}], "Text": "x"}, MOX)
    assert sent.status_code == 200, sent.text
    qid = sent.json()["Submissions"][0]["QueueMsgID"]
    retired: Any = await retired_entry(server, qid)
    assert retired.success is False
    last = retired.results[-1]
    assert last.code == 0 and "address is on suppression list" in last.error
    # The other account's sends to the same address are not affected.
    other = await call(server, "Send", {"To": [{"Address": "blocked@example.org"}], "Text": "x"}, OTHER)
    oqid = other.json()["Submissions"][0]["QueueMsgID"]
    oret: Any = await retired_entry(server, oqid)
    assert oret.success is True
