"""Webhook redelivery (moxtrio extension) in a running localserve: a retired,
failed webhook is sent again as a new webhook carrying
``X-Mox-Webhook-Redelivery-Of``, via the CLI and via the webapi."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import trio

from plugins.webhooks.records import RetiredHook, insert_retired
from plugins.webhooks.service import WebhookService
from tests.support.inproc import localserve_config_dir, running_server
from tests.webapi.conftest import AUTH
from tests.webhooks.helpers import account_edit, receiver
from tests.webhooks.test_e2e import Env


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"), auth="Bearer s3cret", events=["delivered"])
        directory, _ = localserve_config_dir(tmp_path, edit_domains=edit)
        async with running_server(directory) as server:
            yield Env(server, rec)


async def failed_retired_hook(env: Env, rcpt: str) -> tuple[int, bytes]:
    """Deliver to ``rcpt`` while the receiver fails; cancel the webhook so it retires as failed."""
    qid = await env.send(rcpt)
    await env.wait_out(lambda p: p["QueueMsgID"] == qid)
    [req] = [r for r in env.rec.for_path("/out") if r.json()["QueueMsgID"] == qid]
    hook_id = int(req.header("X-Mox-Webhook-ID") or 0)
    with trio.move_on_after(10):
        while "delivering..." in (await env.cli("queue", "webhook", "print", str(hook_id))).output:
            await trio.sleep(0.02)
    res = await env.cli("queue", "webhook", "cancel", "-ids", str(hook_id))
    assert res.output.startswith("1 "), res.output
    return hook_id, req.body


async def test_cli_redeliver_by_id_and_by_range(env: Env) -> None:
    env.rec.statuses["/out"] = 503
    first, body = await failed_retired_hook(env, "one@example.org")
    env.rec.statuses["/out"] = 200
    n = len(env.rec.requests)
    res = await env.cli("queue", "webhook", "redeliver", "-ids", str(first))
    assert res.exit_code == 0, res.output
    new_id = int(res.output.split("redelivered as ")[1].split()[0])
    assert new_id > first
    assert res.output.endswith("1 webhook(s) queued for redelivery\n")
    [again] = (await env.rec.wait(n + 1, "/out"))[n:]
    assert again.header("X-Mox-Webhook-Redelivery-Of") == str(first)
    assert again.header("X-Mox-Webhook-ID") == str(new_id)
    assert again.header("X-Mox-Webhook-Attempt") == "1"
    assert again.header("Authorization") == "Bearer s3cret"
    assert again.body == body
    # First deliveries never carry the header.
    assert all(r.header("X-Mox-Webhook-Redelivery-Of") is None for r in env.rec.requests[:n])
    # The redelivery retired as a success; -failed by time range picks only the original.
    with trio.move_on_after(10):
        while "(none)" not in (await env.cli("queue", "webhook", "list")).output:
            await trio.sleep(0.02)
    ranged = await env.cli("queue", "webhook", "redeliver", "-account", "mox", "-from", "-1h",
                           "-to", "+1h", "-failed")
    assert ranged.exit_code == 0, ranged.output
    assert ranged.output.startswith(f"{first} redelivered as ")
    assert "1 webhook(s) queued" in ranged.output
    # Once the ranged redelivery has retired too, everything retired in the range is three:
    # the original and both redeliveries.
    with trio.move_on_after(10):
        while "(none)" not in (await env.cli("queue", "webhook", "list")).output:
            await trio.sleep(0.02)
    everything = await env.cli("queue", "webhook", "redeliver", "-account", "mox", "-from", "-1h")
    assert "3 webhook(s) queued" in everything.output, everything.output
    # Errors: nothing selected, unknown id, bad time.
    assert (await env.cli("queue", "webhook", "redeliver")).exit_code == 1
    unknown = await env.cli("queue", "webhook", "redeliver", "-ids", "99999")
    assert unknown.exit_code == 1 and "99999 not redelivered" in unknown.output
    assert (await env.cli("queue", "webhook", "redeliver", "-account", "mox", "-from", "yesterday")).exit_code == 1


async def test_webapi_redeliver_own_account_only(env: Env) -> None:
    env.rec.statuses["/out"] = 500
    first, body = await failed_retired_hook(env, "two@example.org")
    env.rec.statuses["/out"] = 200
    now = env.ctx.service(WebhookService).clock.now()
    other = RetiredHook(id=first + 1000, account="other", url="http://127.0.0.1:9/x", payload="{}",
                        submitted=now, last_activity=now, keep_until=now + timedelta(days=1))
    await env.ctx.store.write(lambda c: insert_retired(c, other))
    n = len(env.rec.requests)
    url = f"http://{env.ip}:1080/webapi/v0/WebhookRedeliver"
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.post(url, auth=AUTH, json={"IDs": [first, other.id]})
        assert r.status_code == 200, r.text
        got = r.json()["Redelivered"]
        assert [g["OriginalID"] for g in got] == [other.id, first]
        assert got[0]["ID"] == 0 and got[0]["Error"]
        assert got[1]["ID"] > first and got[1]["Error"] == ""
        [again] = (await env.rec.wait(n + 1, "/out"))[n:]
        assert again.header("X-Mox-Webhook-Redelivery-Of") == str(first)
        assert again.body == body
        # mox's form encoding works too; bad input is a 400 with a code.
        r = await http.post(url, auth=AUTH, data={"request": json.dumps({"IDs": ["x"]})})
        assert r.status_code == 400 and r.json()["Code"] == "user"
        r = await http.post(url, auth=AUTH, json={})
        assert r.status_code == 400 and r.json()["Code"] == "user"
        r = await http.post(url, json={"IDs": [first]})
        assert r.status_code == 401
        # A mox method name still answers as mox: GET of an extension is not a page.
        r = await http.get(url, auth=AUTH)
        assert r.status_code == 404
