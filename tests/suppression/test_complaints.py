"""Spam complaints (RFC 5965 feedback reports, moxtrio extension): reports in the
formats large mailbox providers send, delivered over SMTP to a running
localserve, matched to the message we sent; suppression with category
``complaint`` and the outgoing webhook event ``complaint`` only for accounts
that list it."""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from core.address import parse_address
from core.message.arf import parse_feedback_report
from core.queue.add import AddRecipient, AddRequest
from plugins.suppression.records import Suppression, list_suppressions
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.paths import DATA
from tests.webhooks.helpers import account_edit, receiver
from tests.webhooks.test_e2e import Env

ARF = DATA / "arf"


def fixture(name: str, msgid: str) -> bytes:
    data = (ARF / name).read_bytes().replace(b"MSGID", msgid.encode())
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def test_parse_provider_reports() -> None:
    yahoo = parse_feedback_report(fixture("yahoo-abuse.eml", "m1"))
    assert yahoo is not None
    assert yahoo.feedback_type == "abuse" and yahoo.user_agent == "Yahoo!-Mail-Feedback/2.0"
    assert yahoo.original_mail_from == "mox@localhost"
    assert yahoo.original_rcpt_to == ["reader@example.org"]
    assert yahoo.original_message_id == "<m1@localhost>"
    assert yahoo.original_to == ["reader@example.org", "other@example.org"]
    aol = parse_feedback_report(fixture("redacted-headers.eml", "m2"))
    assert aol is not None
    assert aol.original_rcpt_to == [] and aol.original_mail_from == ""
    assert aol.original_message_id == "<m2@localhost>" and aol.original_to == ["redacted@aol.com"]
    # Not a report: a DSN, plain mail.
    assert parse_feedback_report(b"Subject: hi\r\n\r\nbody\r\n") is None
    dsn = (DATA / "dsn" / "failed.eml").read_bytes()
    assert parse_feedback_report(dsn) is None


async def start(tmp_path: Path, events: list[str] | None) -> AsyncIterator[Env]:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"), in_url=rec.url("/in"), events=events)
        directory, _ = localserve_config_dir(tmp_path, edit_domains=edit)
        # The delivery listener checks that a sender's domain exists.
        senders = {"arf.mail.yahoo.com": {"A": ["192.0.2.25"]}, "aol.net": {"A": ["192.0.2.26"]}}
        async with running_server(directory, dns_records=senders) as server:
            yield Env(server, rec)



async def test_inspect_uses_the_message_in_memory(tmp_path: Path) -> None:
    """With the message's bytes at hand, plain mail is passed without reading the file."""
    from plugins.suppression import complaints

    missing = str(tmp_path / "never-written.eml")
    plain = b"Subject: hi\r\n\r\nbody\r\n"
    assert await complaints.inspect(missing, b"Received: x\r\n", plain) is None
    report = fixture("yahoo-abuse.eml", "m3")
    path = tmp_path / "report.eml"
    path.write_bytes(report)
    for data in (report, None):
        found = await complaints.inspect(str(path), b"Received: x\r\n", data)
        assert found is not None and found.report.original_message_id == "<m3@localhost>"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in start(tmp_path, ["delivered", "complaint"]):
        yield e


@pytest.fixture
async def mox_client_env(tmp_path: Path) -> AsyncIterator[Env]:
    async for e in start(tmp_path, None):  # Events absent: all of mox's events
        yield e


async def send(env: Env, msgid: str, rcpts: list[str]) -> list[int]:
    data = (f"From: mox@localhost\r\nTo: {', '.join(rcpts)}\r\nSubject: weekly\r\n"
            f"Message-Id: <{msgid}@localhost>\r\n\r\nbody\r\n").encode()
    file_id = await env.ctx.store.files.store(data)
    entries = await env.ctx.queue.add(AddRequest(
        account="mox", mail_from=parse_address("mox@localhost"),
        recipients=[AddRecipient(address=parse_address(r)) for r in rcpts], file_id=file_id,
        subject="weekly", message_id=f"<{msgid}@localhost>", extra={"campaign": "w49"}))
    ids = [int(e.id) for e in entries]
    for i in ids:
        await env.wait_out(lambda p, i=i: p["QueueMsgID"] == i and p["Event"] == "delivered")
    return ids


async def deliver_report(env: Env, data: bytes, mail_from: str = "feedback@arf.mail.yahoo.com",
                         rcpt: str = "fbl@localhost") -> None:
    def run() -> None:
        with smtplib.SMTP(env.ip, 1025, timeout=20) as s:
            s.sendmail(mail_from, [rcpt], data)

    await trio.to_thread.run_sync(run)


async def suppressions(env: Env) -> list[Suppression]:
    return await env.ctx.store.read(lambda c: list_suppressions(c, "mox"))


async def wait_for(pred: Callable[[], Any], timeout: float = 10.0) -> None:
    with trio.move_on_after(timeout):
        while not pred():
            await trio.sleep(0.02)
    assert pred()


async def test_yahoo_report_matched_by_message_id_and_recipient(env: Env) -> None:
    reader, other = await send(env, "weekly-1", ["reader@example.org", "other@example.org"])
    await deliver_report(env, fixture("yahoo-abuse.eml", "weekly-1"))
    p = await env.wait_out(lambda p: p["Event"] == "complaint")
    assert p["QueueMsgID"] == reader and p["Suppressing"] is True and p["DSN"] is False
    assert p["MessageID"] == "<weekly-1@localhost>" and p["Extra"] == {"campaign": "w49"}
    assert "Yahoo!-Mail-Feedback/2.0" in p["Error"]
    [sup] = await suppressions(env)
    assert (sup.base_address, sup.kind, sup.manual) == ("reader@example.org", "complaint", False)
    # The report is in the mailbox, but not an incoming message for the webhook
    # (the delivered copies of our own message are: localserve delivers to itself).
    await trio.sleep(0.5)
    assert [r.json()["Subject"] for r in env.rec.for_path("/in")] == ["weekly", "weekly"]
    n = await env.ctx.store.read(
        lambda c: c.execute("SELECT COUNT(*) FROM messages WHERE subject LIKE 'FW:%'").fetchone()[0])
    assert n == 1
    # A second report about the same recipient: an event, not a second entry.
    await deliver_report(env, fixture("yahoo-abuse.eml", "weekly-1"))
    await wait_for(lambda: len([q for q in env.out() if q["Event"] == "complaint"]) == 2)
    second = [q for q in env.out() if q["Event"] == "complaint"][1]
    assert second["Suppressing"] is False
    assert len(await suppressions(env)) == 1
    assert other not in [q["QueueMsgID"] for q in env.out() if q["Event"] == "complaint"]


async def test_redacted_report_single_recipient_and_fromid(env: Env) -> None:
    [qid] = await send(env, "weekly-2", ["solo@example.org"])
    await deliver_report(env, fixture("redacted-headers.eml", "weekly-2"), mail_from="scomp@aol.net")
    p = await env.wait_out(lambda p: p["Event"] == "complaint")
    assert p["QueueMsgID"] == qid and p["Suppressing"] is True
    assert [s.base_address for s in await suppressions(env)] == ["solo@example.org"]
    # A report sent to the fromid address matches through the fromid alone.
    fid_id = await env.send("fid@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == fid_id and p["Event"] == "delivered")
    entry = await env.ctx.store.read(
        lambda c: c.execute("SELECT from_id FROM retired WHERE id = ?", (fid_id,)).fetchone())
    report = fixture("redacted-headers.eml", "unknown-id")
    await deliver_report(env, report, mail_from="scomp@aol.net", rcpt=f"mox+{entry[0]}@localhost")
    p2 = await env.wait_out(lambda p: p["Event"] == "complaint" and p["QueueMsgID"] == fid_id)
    assert p2["FromID"] == entry[0]


async def test_unmatched_report_is_ordinary_mail(env: Env) -> None:
    await deliver_report(env, fixture("yahoo-abuse.eml", "never-sent"))
    await env.rec.wait(1, "/in")
    assert env.rec.for_path("/in")[0].json()["Subject"] == "FW: Your weekly update"
    assert [p for p in env.out() if p["Event"] == "complaint"] == []
    assert await suppressions(env) == []


async def test_mox_clients_never_see_complaint_event(mox_client_env: Env) -> None:
    env = mox_client_env
    [reader, _] = await send(env, "weekly-3", ["reader@example.org", "x@example.org"])
    await deliver_report(env, fixture("yahoo-abuse.eml", "weekly-3"))
    with trio.move_on_after(10):
        while not await suppressions(env):
            await trio.sleep(0.02)
    assert [s.kind for s in await suppressions(env)] == ["complaint"]
    # The webhook would have been queued in the transaction that added the entry.
    hooks = await env.ctx.store.read(lambda c: c.execute(
        "SELECT COUNT(*) FROM webhook_queue WHERE outgoing_event = 'complaint'").fetchone()[0]
        + c.execute("SELECT COUNT(*) FROM webhook_retired WHERE outgoing_event = 'complaint'").fetchone()[0])
    assert hooks == 0
    assert {p["Event"] for p in env.out()} == {"delivered"}
    assert "FW: Your weekly update" not in [r.json()["Subject"] for r in env.rec.for_path("/in")]
    assert reader
