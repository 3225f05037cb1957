"""Outgoing webhooks through the real plugin, store and an HTTP receiver on loopback."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import trio

from core.message.parsed import format_json_time
from plugins.webhooks import signing
from plugins.webhooks.backoff import INTERVALS, MAX_ATTEMPTS
from plugins.webhooks.records import Hook
from tests.webhooks.helpers import START, account_edit, event, harness, receiver


async def test_payload_and_headers_exactly(tmp_path: Path) -> None:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"), auth="Basic dGVzdDp0ZXN0")
        async with harness(tmp_path, edit) as h:
            await h.raise_event(
                event(queue_msg_id=7, subject="hello ☺", extra={"userid": "123", "a": "<&>"})
            )
            (req,) = await rec.wait(1)
    queued = format_json_time(START)
    assert req.body.decode() == (
        '{"Version":0,"Event":"delivered","DSN":false,"Suppressing":false,"QueueMsgID":7,'
        '"FromID":"","MessageID":"\\u003cm1@localhost\\u003e","Subject":"hello ☺",'
        f'"WebhookQueued":"{queued}","SMTPCode":0,"SMTPEnhancedCode":"","Error":"",'
        '"Extra":{"a":"\\u003c\\u0026\\u003e","userid":"123"}}'
    )
    assert req.header("Content-Type") == "application/json; charset=utf-8"
    assert (req.header("User-Agent") or "").startswith("mox/")
    assert (req.header("User-Agent") or "").endswith(" (webhook)")
    assert req.header("X-Mox-Webhook-ID") == "1"
    assert req.header("X-Mox-Webhook-Attempt") == "1"
    assert req.header("Authorization") == "Basic dGVzdDp0ZXN0"
    assert req.header(signing.HEADER) is None
    assert req.path == "/out"


async def test_failed_event_fields_and_success_is_any_2xx(tmp_path: Path) -> None:
    async with receiver(status=204) as rec:
        async with harness(tmp_path, account_edit(out_url=rec.url())) as h:
            await h.raise_event(
                event(event="failed", suppressing=True, smtp_code=550, smtp_enhanced_code="5.0.0",
                      error="remote said no", from_id="NBQC", extra={})
            )
            (req,) = await rec.wait(1)
            rows = await h.wait_rows("SELECT success, results FROM webhook_retired")
            assert await h.rows("SELECT * FROM webhook_queue") == []
    payload = req.json()
    assert list(payload) == ["Version", "Event", "DSN", "Suppressing", "QueueMsgID", "FromID",
                             "MessageID", "Subject", "WebhookQueued", "SMTPCode",
                             "SMTPEnhancedCode", "Error", "Extra"]
    assert (payload["Event"], payload["Suppressing"], payload["SMTPCode"]) == ("failed", True, 550)
    assert (payload["SMTPEnhancedCode"], payload["Error"], payload["Extra"]) == ("5.0.0", "remote said no", {})
    assert req.header("Authorization") is None
    success, results = rows[0]
    assert success == 1
    assert json.loads(results)[-1]["code"] == 204


async def test_events_filter(tmp_path: Path) -> None:
    async with receiver() as rec:
        async with harness(tmp_path, account_edit(out_url=rec.url(), events=["failed"])) as h:
            await h.raise_event(event(event="delivered", queue_msg_id=1))
            await h.raise_event(event(event="failed", queue_msg_id=2))
            (req,) = await rec.wait(1)
            # The attempt commits after the receiver answered: wait for it.
            retired = await h.wait_rows("SELECT queue_msg_id FROM webhook_retired")
            assert [r[0] for r in retired] == [2]
            # No hook was queued for the filtered event, so none can follow.
            assert await h.rows("SELECT * FROM webhook_queue") == []
            assert len(rec.requests) == 1
            assert req.json()["Event"] == "failed"


async def test_no_webhook_without_config(tmp_path: Path) -> None:
    async with harness(tmp_path, account_edit()) as h:
        await h.raise_event(event())
        assert await h.rows("SELECT * FROM webhook_queue") == []


async def test_retry_schedule_with_fake_clock_until_twelfth_attempt(tmp_path: Path) -> None:
    async with receiver(status=500) as rec:
        async with harness(tmp_path, account_edit(out_url=rec.url())) as h:
            await h.raise_event(event())
            waits = []
            for attempt in range(1, MAX_ATTEMPTS + 1):
                await rec.wait(attempt)
                if attempt == MAX_ATTEMPTS:
                    break
                await h.wait_rows(
                    "SELECT attempts, next_attempt, results FROM webhook_queue"
                    " WHERE attempts = ? AND results NOT LIKE '%delivering...%'", (attempt,))
                hook = (await h.svc.list())[0]
                waits.append(hook.next_attempt - hook.results[-1].start)
                # Not due yet: nothing happens until the clock reaches NextAttempt.
                h.clock.set(hook.next_attempt - timedelta(seconds=1))
                await trio.sleep(0.05)
                assert len(rec.requests) == attempt
                h.clock.set(hook.next_attempt)
            retired = await h.wait_rows("SELECT id FROM webhook_retired")
            r = await h.svc.get_retired(retired[0][0])
    assert [q.header("X-Mox-Webhook-Attempt") for q in rec.requests] == [str(i) for i in range(1, 13)]
    assert len({q.body for q in rec.requests}) == 1  # identical body on every attempt
    for got, want in zip(waits, INTERVALS, strict=True):
        assert want * 0.99 <= got <= want * 1.0099, (got, want)
    assert r.attempts == 12 and not r.success and len(r.results) == 12
    assert r.results[-1].error == 'http status "500 Internal Server Error", expected 2xx'
    assert r.results[-1].code == 500
    assert len(r.results[-1].response) == 512
    assert r.keep_until == r.last_activity + timedelta(hours=72)


async def test_superseding_retires_queued_older_hook(tmp_path: Path) -> None:
    async with receiver(status=500) as rec:
        async with harness(tmp_path, account_edit(out_url=rec.url())) as h:
            await h.raise_event(event(event="delayed", queue_msg_id=5, smtp_code=451))
            await rec.wait(1)
            await h.wait_rows("SELECT 1 FROM webhook_queue WHERE attempts = 1 AND results NOT LIKE '%delivering...%'")
            # An incoming hook (QueueMsgID 0) and another message's hook stay.
            await h.raise_event(event(event="delayed", queue_msg_id=6))
            await h.raise_event(event(event="failed", queue_msg_id=5, smtp_code=451))
            await rec.wait(3)
            retired = await h.wait_rows("SELECT id, superseded_by_id, success FROM webhook_retired")
            queued = await h.rows("SELECT id, queue_msg_id, outgoing_event FROM webhook_queue ORDER BY id")
    assert retired == [(1, 3, 0)]
    assert queued == [(2, 6, "delayed"), (3, 5, "failed")]
    assert [q.json()["Event"] for q in rec.requests[1:]].count("failed") == 1


async def test_superseded_while_in_flight_records_on_retired(tmp_path: Path) -> None:
    async with receiver(hang={"/hook"}) as rec:
        async with harness(tmp_path, account_edit(out_url=rec.url()), settings="Timeout: 1\n") as h:
            await h.raise_event(event(event="delayed", queue_msg_id=5))
            await rec.wait(1)
            await h.raise_event(event(event="failed", queue_msg_id=5))
            rows = await h.wait_rows(
                "SELECT results FROM webhook_retired WHERE id = 1 AND results LIKE '%(superseded)%'")
    last = json.loads(rows[0][0])[-1]
    assert last["error"].endswith("no response within 1s (superseded)")


async def test_keep_period_zero_keeps_no_retired_hooks_and_cleanup(tmp_path: Path) -> None:
    async with receiver() as rec:
        async with harness(tmp_path, account_edit(out_url=rec.url(), keep_webhooks="0s")) as h:
            await h.raise_event(event())
            await rec.wait(1)
            with trio.move_on_after(5):
                while True:
                    if not await h.rows("SELECT 1 FROM webhook_queue"):
                        break
                    await trio.sleep(0.01)
            assert await h.rows("SELECT * FROM webhook_retired") == []
    async with receiver() as rec:
        async with harness(tmp_path / "b", account_edit(out_url=rec.url())) as h:
            await h.raise_event(event())
            rows = await h.wait_rows("SELECT keep_until, last_activity FROM webhook_retired")
            assert rows[0][0] - rows[0][1] == 72 * 3600 * 10**6
            assert await h.svc.cleanup_retired() == 0
            h.clock.advance(timedelta(hours=72, seconds=1))
            assert await h.svc.cleanup_retired() == 1
            assert await h.rows("SELECT * FROM webhook_retired") == []


async def test_hanging_receiver_does_not_stall_other_webhooks(tmp_path: Path) -> None:
    async with receiver(hang={"/hang"}) as rec:
        settings = "Timeout: 4\nMaxConcurrent: 4\n"
        async with harness(tmp_path, account_edit(out_url=rec.url("/hang")), settings=settings) as h:
            now = h.clock.now()

            def insert(conn: object) -> None:
                from plugins.webhooks.queue_ops import queue_hook

                for i in range(8):
                    queue_hook(conn, h.ctx.config,  # type: ignore[arg-type]
                               Hook(account="mox", url=rec.url(f"/ok{i}"), payload="{}",
                                    submitted=now, next_attempt=now, is_incoming=True), now)

            await h.raise_event(event())
            await rec.wait(1, "/hang")
            await h.ctx.store.write(insert)
            h.svc.kick()
            await h.wait_rows("SELECT 1 FROM webhook_retired WHERE url LIKE '%/ok%'", n=8, timeout=5)
            # All eight were answered while the hanging one was still in flight:
            # its attempt has not reached its time limit yet.
            hanging = await h.rows("SELECT results FROM webhook_queue WHERE url LIKE '%/hang%'")
            assert len(hanging) == 1 and "no response" not in hanging[0][0]
            rows = await h.wait_rows("SELECT results FROM webhook_queue WHERE results LIKE '%no response%'")
    assert "no response within 4s" in json.loads(rows[0][0])[-1]["error"]


async def test_transport_error_is_a_failure_with_code_zero(tmp_path: Path) -> None:
    sock = trio.socket.socket()
    await sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    url = f"http://127.0.0.1:{port}/x"
    async with harness(tmp_path, account_edit(out_url=url)) as h:
        await h.raise_event(event())
        rows = await h.wait_rows(
            "SELECT results FROM webhook_queue WHERE attempts = 1"
            " AND results NOT LIKE '%delivering...%'")
    last = json.loads(rows[0][0])[-1]
    assert last["code"] == 0 and not last["success"]
    assert last["error"].startswith(f'http transact: Post "{url}": ')


async def test_signing_secret_header_verifies(tmp_path: Path) -> None:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url(), secret="s3cret")
        async with harness(tmp_path, edit) as h:
            await h.raise_event(event())
            (req,) = await rec.wait(1)
    header = req.header(signing.HEADER)
    assert header is not None and header.startswith("t=")
    assert signing.verify("s3cret", header, req.body, int(time.time()))
    assert not signing.verify("other", header, req.body, int(time.time()))
    assert not signing.verify("s3cret", header, req.body + b" ", int(time.time()))
    assert not signing.verify("s3cret", header, req.body, int(time.time()) + 3600)
