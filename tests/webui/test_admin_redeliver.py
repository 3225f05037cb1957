"""The admin interface's webhook redelivery (``HookRetiredRedeliver``, our extension)
over HTTP: CSRF required, all-or-none, the new webhook reaching the receiver
with ``X-Mox-Webhook-Redelivery-Of``, and the "Redeliver" action on the pages."""

from __future__ import annotations

from typing import Any

from tests.webhooks.helpers import Receiver, receiver
from tests.webui.conftest import Sherpa, WebServer, send
from tests.webui.test_admin_api import _wait, _with_results


async def retired_failed_hook(web: WebServer, rec: Receiver, a: Sherpa) -> dict[str, Any]:
    """A webhook whose receiver answered 500, canceled so it is retired as failed;
    then the account's URL is moved to the receiver's working path ``/ok``."""
    acc = await web.account()
    await acc.call("OutgoingWebhookSave", rec.url("/fail"), "Basic dGVzdA==", ["delivered"])
    await send(web, "someone@localhost")
    await rec.wait(1, "/fail")
    hooks = await _wait(lambda: _with_results(a.call("HookList", {"Account": "mox"}, {})), "a failed attempt")
    assert await a.call("HookCancel", {"IDs": [hooks[0]["ID"]]}) == 1
    await acc.call("OutgoingWebhookSave", rec.url("/ok"), "Basic dGVzdA==", ["delivered"])
    retired = await a.call("HookRetiredList", {"IDs": [hooks[0]["ID"]]}, {})
    assert retired[0]["Success"] is False
    return dict(retired[0])


async def test_redeliver_needs_csrf_and_sends_with_reference(web: WebServer) -> None:
    async with receiver(statuses={"/fail": 500}) as rec:
        a = await web.admin()
        old = await retired_failed_hook(web, rec, a)
        for csrf, code in (("", "user:noAuth"), ("wrong" + a.csrf, "user:badAuth")):
            err = await a.error("HookRetiredRedeliver", [old["ID"]], csrf=csrf)
            assert err["code"] == code
        assert await a.call("HookQueueSize") == 0
        assert rec.for_path("/ok") == []

        new_ids = await a.call("HookRetiredRedeliver", [old["ID"]])
        assert isinstance(new_ids, list) and len(new_ids) == 1 and new_ids[0] != old["ID"]
        got = (await rec.wait(1, "/ok"))[0]
        assert got.header("X-Mox-Webhook-Redelivery-Of") == str(old["ID"])
        assert got.header("Authorization") == "Basic dGVzdA=="
        first = rec.for_path("/fail")[0]
        assert got.json() == first.json()  # the same payload, byte for byte in JSON terms
        assert first.header("X-Mox-Webhook-Redelivery-Of") is None
        done = await _wait(lambda: a.call("HookRetiredList", {"IDs": new_ids}, {}), "the redelivery retired")
        assert done[0]["Success"] is True and done[0]["URL"] == rec.url("/ok")
        # The original stays as it was.
        assert (await a.call("HookRetiredList", {"IDs": [old["ID"]]}, {}))[0]["Success"] is False


async def test_redeliver_is_all_or_none(web: WebServer) -> None:
    async with receiver(statuses={"/fail": 500}) as rec:
        a = await web.admin()
        old = await retired_failed_hook(web, rec, a)
        err = await a.error("HookRetiredRedeliver", [old["ID"], 999999])
        assert err["code"] == "user:error" and "999999" in err["message"], err
        err = await a.error("HookRetiredRedeliver", [])
        assert err["code"] == "user:error"
        err = await a.error("HookRetiredRedeliver", ["x"])
        assert err["code"] == "sherpa:badParams"
        assert await a.call("HookQueueSize") == 0
        retired = await a.call("HookRetiredList", {"Account": "mox"}, {})
        assert [h["ID"] for h in retired] == [old["ID"]]  # nothing new was queued and retired


async def test_pages_offer_redeliver_for_retired_webhooks_only(web: WebServer) -> None:
    async with receiver(statuses={"/fail": 500}) as rec:
        a = await web.admin()
        old = await retired_failed_hook(web, rec, a)
        r = await a.http.get(a.base + "hooks/retired")
        assert 'data-fn="HookRetiredRedeliver"' in r.text and "data-confirm=" in r.text
        assert f'name="id" value="{old["ID"]}"' in r.text
        r = await a.http.get(a.base + f"hooks/retired/{old['ID']}")
        assert f"data-params='[[{old['ID']}]]'" in r.text and ">Redeliver</button>" in r.text
        r = await a.http.get(a.base + "hooks")
        assert "HookRetiredRedeliver" not in r.text
