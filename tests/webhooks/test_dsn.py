"""Incoming DSNs and fromid replies matched to outgoing messages (core/queue/dsnmatch.py),
in a running localserve: real queue entries with fromids (retired and still
queued), the real suppression plugin, and the webhooks sent for them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from core.events import IncomingDelivered
from core.queue.dsnmatch import apply_incoming, fromid_of, prepare_incoming
from core.runtime import Server
from core.services import HookFilter, HookRetiredFilter
from plugins.webhooks.admin import select_hooks, select_retired
from plugins.webhooks.service import WebhookService
from tests.support.inproc import localserve_config_dir, running_server
from tests.webhooks.helpers import account_edit, receiver
from tests.webhooks.test_e2e import Env


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"), in_url=rec.url("/in"), fromid_login=True)
        directory, _ = localserve_config_dir(tmp_path, edit_domains=edit)
        async with running_server(directory) as server:
            yield Env(server, rec)


def dsn_message(rcpt: str, blocks: list[str], report: str = "message/delivery-status") -> bytes:
    status = "Reporting-MTA: dns; example.org\r\n\r\n" + "\r\n".join(blocks)
    return (
        f"From: postmaster@example.org\r\nTo: {rcpt}\r\nSubject: failure\r\n"
        "Message-Id: <reply1@example.org>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status; boundary=bb\r\n\r\n"
        "--bb\r\nContent-Type: text/plain\r\n\r\ndelivery failed\r\n"
        f"--bb\r\nContent-Type: {report}\r\n\r\n{status}\r\n--bb--\r\n"
    ).encode()


def block(action: str, status: str, diag: str = "") -> str:
    b = f"Final-Recipient: rfc822; x@example.org\r\nAction: {action}\r\nStatus: {status}\r\n"
    if diag:
        b += f"Diagnostic-Code: smtp; {diag}\r\n"
    return b


async def incoming(env: Env, rcpt: str, data: bytes, mail_from: str = "") -> bool:
    """What core/incoming.py does per recipient: prepare outside, apply inside the write."""
    ctx = env.ctx
    file_id = await ctx.store.files.store(data)
    async with ctx.store.files.local_copy(file_id) as local:
        path = str(local)
        prepared = await prepare_incoming(ctx, path, b"", [rcpt])
        delivered = IncomingDelivered(account="mox", message_id=1000, mailbox="Inbox", message_path=path,
                                      mail_from=mail_from, rcpt_to=rcpt, meta={"MsgID": 1000})

        def tx(conn: Any) -> bool:
            matched = apply_incoming(conn, ctx, prepared, delivered)
            if not matched:
                ctx.hooks.call_sync("moxtrio_incoming_delivered", conn=conn, delivered=delivered)
            return matched

        return bool(await ctx.store.write(tx))


async def fromid_for(env: Env, msg_id: int, table: str) -> str:
    rows = await env.ctx.store.read(
        lambda c: c.execute(f"SELECT from_id FROM {table} WHERE id = ?", (msg_id,)).fetchall())
    return str(rows[0][0])


async def test_failed_dsn_for_retired_message(env: Env) -> None:
    sent = await env.send("someone@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["Event"] == "delivered")
    fid = await fromid_for(env, sent, "retired")
    data = dsn_message(f"mox+{fid}@localhost", [block("failed", "5.1.1", "550 5.1.1 no such user")])
    assert await incoming(env, f"mox+{fid}@localhost", data) is True
    p = await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["DSN"])
    assert p == {**p, "Event": "failed", "DSN": True, "Suppressing": True, "SMTPCode": 550,
                 "SMTPEnhancedCode": "5.1.1", "Error": "", "Extra": None, "FromID": fid,
                 "MessageID": "<someone@example.org@test>", "Subject": "for someone@example.org"}
    rows = await env.ctx.store.read(
        lambda c: c.execute("SELECT success, results FROM retired WHERE id = ?", (sent,)).fetchall())
    success, results = rows[0]
    last = json.loads(results)[-1]
    assert success == 1  # a DSN does not change Success
    assert (last["code"], last["secode"], last["error"], last["success"]) == (550, "1.1", "incoming message", False)
    sup = await env.ctx.store.read(
        lambda c: c.execute("SELECT base_address, reason FROM suppression_list").fetchall())
    assert [tuple(r) for r in sup] == [
        ("someone@example.org", 'delivery failure from DSN with smtp code 550, enhanced code "1.1"')]
    # No incoming webhook for a matched DSN.
    incoming_hooks = await env.ctx.store.read(lambda c: c.execute(
        "SELECT id FROM webhook_queue WHERE is_incoming = 1 AND subject = 'failure'"
        " UNION ALL SELECT id FROM webhook_retired WHERE is_incoming = 1 AND subject = 'failure'"
    ).fetchall())
    assert incoming_hooks == []


async def test_delayed_dsn_matches_queued_message_and_supersedes(env: Env) -> None:
    queued = await env.send("usertemperror@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == queued and p["Event"] == "delayed")
    fid = await fromid_for(env, queued, "queue")
    data = dsn_message(f"mox+{fid}@localhost", [block("delayed", "4.4.1")])
    assert await incoming(env, f"mox+{fid}@localhost", data) is True
    p = await env.wait_out(lambda p: p["QueueMsgID"] == queued and p["DSN"])
    assert (p["Event"], p["SMTPCode"], p["SMTPEnhancedCode"], p["Suppressing"]) == ("delayed", 400, "4.4.1", False)
    assert p["Extra"] is None
    hooks = await env.ctx.store.read(lambda c: c.execute(
        "SELECT payload, extra FROM webhook_retired WHERE queue_msg_id = ?"
        " UNION ALL SELECT payload, extra FROM webhook_queue WHERE queue_msg_id = ?",
        (queued, queued)).fetchall())
    # The hook record of a DSN-derived event carries no Extra; queue events {}.
    assert sorted((json.loads(h[0])["DSN"], h[1]) for h in hooks) == [(False, "{}"), (True, None)]


@pytest.mark.parametrize(
    ("blocks", "report", "event", "code", "ecode", "error"),
    [
        ([block("relayed", "2.0.0")], "message/delivery-status", "relayed", 0, "", "incoming message"),
        ([block("expanded", "2.0.0")], "message/global-delivery-status", "expanded", 0, "", "incoming message"),
        ([block("weird", "5.0.0")], "message/delivery-status", "unrecognized", 500, "5.0.0", "incoming message"),
        ([block("failed", "5.1.1"), block("failed", "5.1.2")], "message/delivery-status", "unrecognized", 0, "",
         "incoming dsn has 2 recipients, expecting 1"),
    ],
)
async def test_dsn_actions(env: Env, blocks: list[str], report: str, event: str, code: int, ecode: str,
                           error: str) -> None:
    sent = await env.send("someone@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["Event"] == "delivered")
    fid = await fromid_for(env, sent, "retired")
    assert await incoming(env, f"mox+{fid}@localhost", dsn_message(f"mox+{fid}@localhost", blocks, report))
    p = await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["DSN"])
    assert (p["Event"], p["SMTPCode"], p["SMTPEnhancedCode"]) == (event, code, ecode)
    rows = await env.ctx.store.read(
        lambda c: c.execute("SELECT results FROM retired WHERE id = ?", (sent,)).fetchall())
    assert json.loads(rows[0][0])[-1]["error"] == error


async def test_plain_reply_to_fromid_is_unrecognized_and_unknown_fromid_is_incoming(env: Env) -> None:
    sent = await env.send("someone@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["Event"] == "delivered")
    fid = await fromid_for(env, sent, "retired")
    reply = (b"From: someone@example.org\r\nSubject: auto\r\nAuto-Submitted: auto-replied\r\n"
             b"Message-Id: <r1@example.org>\r\n\r\naway\r\n")
    assert await incoming(env, f"mox+{fid}@localhost", reply, mail_from="someone@example.org") is True
    p = await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["Event"] == "unrecognized")
    assert (p["DSN"], p["SMTPCode"], p["Extra"]) == (False, 0, None)
    rows = await env.ctx.store.read(
        lambda c: c.execute("SELECT results FROM retired WHERE id = ?", (sent,)).fetchall())
    assert json.loads(rows[0][0])[-1]["error"] == "incoming message not a dsn"
    # An unknown fromid is normal incoming mail: incoming webhook, Automated.
    assert await incoming(env, "mox+nosuchid@localhost", reply, mail_from="someone@example.org") is False
    with trio.move_on_after(10):
        while True:
            if [r for r in env.rec.for_path("/in") if r.json()["Subject"] == "auto"]:
                break
            await trio.sleep(0.02)
    (auto,) = [r.json() for r in env.rec.for_path("/in") if r.json()["Subject"] == "auto"]
    assert auto["Meta"]["Automated"] is True and auto["Meta"]["RcptTo"] == "mox+nosuchid@localhost"


def test_fromid_of_uses_first_separator_and_keeps_case(tmp_path: Path) -> None:
    from core.config import load_config

    directory, _ = localserve_config_dir(tmp_path)
    config = load_config(directory / "mox.conf")
    assert fromid_of(config, "mox+AbC+d@localhost") == "AbC+d"
    assert fromid_of(config, "mox@localhost") == ""
    assert fromid_of(config, "mox+x@other.example") == ""  # not a configured domain
    assert fromid_of(config, "nodomain") == ""


async def test_server_fixture_is_localserve(env: Env) -> None:
    assert isinstance(env.server, Server) and env.server.localserve


async def test_dsn_over_smtp_to_fromid_address_becomes_dsn_event_not_incoming(env: Env) -> None:
    """The whole path: a DSN delivered over SMTP (port 1025) to mox+<fromid>@localhost
    goes through core/incoming.py's matching: an outgoing DSN event, no incoming webhook."""
    import smtplib

    sent = await env.send("someone@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["Event"] == "delivered")
    fid = await fromid_for(env, sent, "retired")
    rcpt = f"mox+{fid}@localhost"
    data = dsn_message(rcpt, [block("failed", "5.1.1", "550 5.1.1 no such user")])
    ip = env.server.config.static.Listeners["local"].IPs[0]

    def deliver() -> None:
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.sendmail("", [rcpt], data)

    await trio.to_thread.run_sync(deliver)
    p = await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["DSN"])
    assert (p["Event"], p["SMTPCode"], p["SMTPEnhancedCode"], p["Suppressing"]) == ("failed", 550, "5.1.1", True)
    # A plain message to mox@localhost afterwards still gets its incoming webhook,
    # and the DSN never produced one.
    def plain() -> None:
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.sendmail("x@localhost", ["mox@localhost"], b"From: x@localhost\r\nSubject: plain\r\n\r\nhi\r\n")

    await trio.to_thread.run_sync(plain)
    with trio.fail_after(10):
        while True:
            if "plain" in [r.json()["Subject"] for r in env.rec.for_path("/in")]:
                break
            await trio.sleep(0.05)
    # (localserve also stored the original send in mox's Inbox: its incoming
    # webhook is expected; the DSN's is not.)
    incoming_subjects = [r.json()["Subject"] for r in env.rec.for_path("/in")]
    assert "failure" not in incoming_subjects


async def test_dsn_webhook_record_keeps_the_dsn_message_id(env: Env) -> None:
    """As in mox: a DSN-derived webhook's record has the incoming DSN's Message-Id,
    while its payload carries the original message's."""
    sent = await env.send("someone@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["Event"] == "delivered")
    fid = await fromid_for(env, sent, "retired")
    data = dsn_message(f"mox+{fid}@localhost", [block("failed", "5.1.1", "550 5.1.1 no such user")])
    assert await incoming(env, f"mox+{fid}@localhost", data) is True
    payload = await env.wait_out(lambda p: p["QueueMsgID"] == sent and p["DSN"])
    original = (await env.ctx.queue.get_retired(sent)).message_id
    assert payload["MessageID"] == original
    # Both tables in one snapshot: the webhook may be retired (moved from the
    # queue to the retired table) between two separate reads.
    now = env.ctx.service(WebhookService).clock.now()
    records = await env.ctx.store.read(
        lambda c: [*select_hooks(c, HookFilter(), now), *select_retired(c, HookRetiredFilter(), now)]
    )
    dsn_records = [r for r in records if r.queue_msg_id == sent and r.outgoing_event == "failed"]
    assert [r.message_id for r in dsn_records] == ["<reply1@example.org>"]
