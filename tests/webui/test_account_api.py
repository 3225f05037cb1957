"""The account sherpa API over HTTP: suppressions, webhook settings and test calls,
fromid addresses, retired periods; domains.conf rewritten atomically and reloaded;
two accounts kept apart."""

from __future__ import annotations

import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from core.accounts import set_password
from core.config import sconf
from core.config.models import Dynamic
from tests.webhooks.helpers import receiver
from tests.webui.conftest import WebServer, send, start, webapi

OTHER = "\tother:\n\t\tDomain: localhost\n\t\tDestinations:\n\t\t\tother@localhost: nil\n"
COMMENT = "# A hand-written comment above the accounts.\n"


def _two_accounts(text: str) -> str:
    text = text.replace("Accounts:\n", COMMENT + "Accounts:\n" + OTHER, 1)
    return text


@pytest.fixture
async def web2(tmp_path: Path) -> AsyncIterator[WebServer]:
    async for s in start(tmp_path, edit_domains=_two_accounts):
        await set_password(s.ctx, "other", "otherpassword")
        yield s


async def test_account_returns_own_config_and_suppressions(web2: WebServer) -> None:
    mox = await web2.account()
    other = await web2.account("other@localhost", "otherpassword")
    await mox.call("SuppressionAdd", "blocked@example.com", True, "bounced")
    conf, used, limit, sups = await mox.call("Account")
    assert "other@localhost" not in conf["Destinations"] and "mox@localhost" in conf["Destinations"]
    assert conf["KeepRetiredMessagePeriod"] == 72 * 3600 * 10**9
    assert isinstance(used, int) and limit == 0
    assert [s["BaseAddress"] for s in sups] == ["blocked@example.com"]
    conf, _, _, sups = await other.call("Account")
    assert list(conf["Destinations"]) == ["other@localhost"]
    assert sups == []
    assert await other.call("SuppressionList") == []
    # other cannot remove mox's entry: it is not on its list.
    err = await other.error("SuppressionRemove", "blocked@example.com")
    assert err["code"] == "user:error"
    assert len(await mox.call("SuppressionList")) == 1


async def test_suppression_add_list_remove_and_webapi_sees_it(web2: WebServer) -> None:
    mox = await web2.account()
    sup = await mox.call("SuppressionAdd", "Some.One+tag@Example.com", True, "asked to stop")
    assert sup["Account"] == "mox" and sup["Manual"] is True and sup["Reason"] == "asked to stop"
    assert sup["OriginalAddress"] == "Some.One+tag@example.com" and sup["ID"] > 0
    assert list(sup) == ["ID", "Created", "Account", "BaseAddress", "OriginalAddress", "Manual", "Reason"]
    r = await webapi(web2, "SuppressionPresent", {"EmailAddress": "Some.One+tag@Example.com"})
    assert r.json() == {"Present": True}
    assert [s["ID"] for s in await mox.call("SuppressionList")] == [sup["ID"]]
    err = await mox.error("SuppressionAdd", "Some.One+tag@Example.com", False, "")
    assert err["code"] == "user:error"
    err = await mox.error("SuppressionAdd", "not an address", False, "")
    assert err["code"] == "user:error" and err["message"].startswith("parsing address")
    assert await mox.call("SuppressionRemove", "Some.One+tag@Example.com") is None
    r = await webapi(web2, "SuppressionPresent", {"EmailAddress": "Some.One+tag@Example.com"})
    assert r.json() == {"Present": False}
    err = await mox.error("SuppressionRemove", "Some.One+tag@Example.com")
    assert err["code"] == "user:error"


async def test_outgoing_webhook_save_writes_config_and_next_event_goes_there(web2: WebServer) -> None:
    path = web2.directory / "domains.conf"
    inode = os.stat(path).st_ino
    async with receiver() as rec:
        mox = await web2.account()
        assert await mox.call("OutgoingWebhookSave", rec.url("/out"), "Bearer s3cret", []) is None
        text = path.read_text()
        assert f"URL: {rec.url('/out')}" in text and "Authorization: Bearer s3cret" in text
        assert COMMENT in text  # comments outside the changed account are kept
        assert os.stat(path).st_ino != inode  # replaced by rename, not rewritten in place
        assert not [p for p in path.parent.iterdir() if p.name.startswith(".domains.conf.tmp")]
        acc = web2.ctx.config.account("mox")
        assert acc.OutgoingWebhook.URL == rec.url("/out")  # active without restart
        assert web2.ctx.config.account("other").OutgoingWebhook is None
        await send(web2, "someone@localhost")
        got = await rec.wait(1, "/out")
        assert got[0].header("Authorization") == "Bearer s3cret"
        assert got[0].json()["Event"] == "delivered"
        # An empty URL removes the webhook.
        await mox.call("OutgoingWebhookSave", "", "", [])
        assert web2.ctx.config.account("mox").OutgoingWebhook is None
        assert "Bearer s3cret" not in path.read_text()
        err = await mox.error("OutgoingWebhookSave", "ftp://example.com/", "", [])
        assert err == {"code": "user:error", "message": "parsing url: scheme must be http or https"}
        err = await mox.error("OutgoingWebhookSave", rec.url(), "", ["nonsense"])
        assert err["code"] == "user:error"


async def test_webhook_test_calls(web2: WebServer) -> None:
    async with receiver(statuses={"/missing": 404}) as rec:
        mox = await web2.account()
        data = {"Version": 0, "Event": "delivered", "QueueMsgID": 101}
        code, response, errmsg = await mox.call("OutgoingWebhookTest", rec.url("/t"), "Basic eDp5", data)
        assert (code, response, errmsg) == (200, "ok", "")
        req = rec.for_path("/t")[0]
        assert req.json() == data and req.body.decode().startswith("{\n\t")
        assert req.header("Authorization") == "Basic eDp5"
        assert req.header("X-Mox-Webhook-ID") == "1" and req.header("X-Mox-Webhook-Attempt") == "1"
        code, response, errmsg = await mox.call("IncomingWebhookTest", rec.url("/missing"), "", {"Version": 0})
        assert code == 404 and len(response) == 512
        assert errmsg == 'http status "404 Not Found", expected 200 ok'
        assert rec.for_path("/missing")[0].header("Authorization") is None
    code, response, errmsg = await mox.call("OutgoingWebhookTest", "http://127.0.0.1:9/", "", {})
    assert code == 0 and response == "" and errmsg.startswith("http transact:")
    err = await mox.error("IncomingWebhookTest", "javascript:alert(1)", "", {})
    assert err["code"] == "user:error"


async def test_incoming_webhook_fromid_and_retired_periods_saved(web2: WebServer) -> None:
    mox = await web2.account()
    other = await web2.account("other@localhost", "otherpassword")
    await mox.call("IncomingWebhookSave", "http://127.0.0.1:9/in", "")
    await mox.call("FromIDLoginAddressesSave", ["mox@localhost"])
    await mox.call("KeepRetiredPeriodsSave", 3600 * 10**9, 2 * 3600 * 10**9)
    await other.call("KeepRetiredPeriodsSave", 0, 0)
    dyn = sconf.parse(Dynamic, (web2.directory / "domains.conf").read_text())
    acc = dyn.Accounts["mox"]
    assert acc.IncomingWebhook is not None and acc.IncomingWebhook.URL == "http://127.0.0.1:9/in"
    assert acc.FromIDLoginAddresses == ["mox@localhost"]
    assert sconf.duration_ns(acc.KeepRetiredMessagePeriod) == 3600 * 10**9
    assert sconf.duration_ns(acc.KeepRetiredWebhookPeriod) == 2 * 3600 * 10**9
    assert sconf.duration_ns(dyn.Accounts["other"].KeepRetiredMessagePeriod) == 0
    assert dyn.Accounts["other"].IncomingWebhook is None
    conf = (await mox.call("Account"))[0]
    assert conf["FromIDLoginAddresses"] == ["mox@localhost"]
    assert conf["KeepRetiredWebhookPeriod"] == 2 * 3600 * 10**9
    err = await mox.error("FromIDLoginAddressesSave", ["nope"])
    assert err["code"] == "user:error"
    # A login address of another account is refused by the config check, nothing written.
    before = (web2.directory / "domains.conf").read_text()
    err = await mox.error("FromIDLoginAddressesSave", ["other@localhost"])
    assert err["code"] == "user:error"
    assert (web2.directory / "domains.conf").read_text() == before
    err = await mox.error("IncomingWebhookSave", "file:///etc/passwd", "")
    assert err == {"code": "user:error", "message": "parsing url: scheme must be http or https"}
    err = await mox.error("IncomingWebhookSave", "http://x", "", "extra")
    assert err["code"] == "sherpa:badParams"
    err = await mox.error("KeepRetiredPeriodsSave", -1, 0)
    assert err["code"] == "user:error"


async def test_concurrent_reader_never_sees_half_a_file(web2: WebServer) -> None:
    """A reader parsing domains.conf in a loop while the account is saved 20 times."""
    path = web2.directory / "domains.conf"
    stop = threading.Event()
    problems: list[str] = []
    parsed = [0]

    def reader() -> None:
        while not stop.is_set():
            try:
                sconf.parse(Dynamic, path.read_text())
                parsed[0] += 1
            except Exception as exc:  # noqa: BLE001 - recorded for the assertion
                problems.append(repr(exc))

    mox = await web2.account()
    t = threading.Thread(target=reader, daemon=True)
    t.start()
    try:
        for i in range(20):
            await mox.call("KeepRetiredPeriodsSave", (i + 1) * 10**9, 0)
    finally:
        stop.set()
        await trio.to_thread.run_sync(t.join, 10)
    assert problems == [] and parsed[0] > 0
    assert sconf.duration_ns(web2.ctx.config.account("mox").KeepRetiredMessagePeriod) == 20 * 10**9
