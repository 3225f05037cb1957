"""End-to-end queue delivery to an aiosmtpd sink, with DNS from the local responder."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from core.message.dsn import parse_dsn
from core.queue.add import AddRecipient, fromid_address, generate_fromid
from core.store.queue_rows import FromIDNotUnique
from tests.queue.conftest import START, addr


async def test_success_delivers_and_retires(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory() as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        [e] = await h.add(["rcpt@example.org"], extra={"userid": "123"})
        assert e.id > 0 and e.base_id == 0
        await h.wait_for(lambda: h.recorder.events_for("rcpt@example.org") == ["delivered"])
        # The recorder sees the event inside the transaction; wait for its commit.
        async def committed() -> bool:
            return await h.queued(e.id) is None

        await h.wait_for(committed)
        msgs = sink.messages()
        assert len(msgs) == 1
        assert msgs[0].rcpt_tos == ["rcpt@example.org"]
        assert msgs[0].mail_from == "mjl@mail.example"
        assert msgs[0].data.startswith(b"Received: from test by mail.example")
        assert b"\r\n\r\nhello\r\n" in msgs[0].data
        assert await h.queued(e.id) is None
        r = await h.retired(e.id)
        assert r.success and r.attempts == 1
        assert r.keep_until == START + timedelta(hours=72)
        assert r.last_activity == START
        assert r.results[-1].success and r.results[-1].code == 250 and r.results[-1].secode == "1.5"
        ev = h.recorder.events[-1]
        assert (ev.smtp_code, ev.smtp_enhanced_code, ev.error, ev.extra) == (
            0,
            "",
            "",
            {"userid": "123"},
        )
        assert (
            ev.queue_msg_id == e.id
            and ev.message_id == "<m1@mail.example>"
            and ev.subject == "test"
        )
        # The message file goes with the last row referencing it (removed
        # right after the commit that retired the entry).
        files = h.ctx.store.files
        await h.wait_for(lambda: e.file_id not in files.list_ids_sync(), timeout=5)


async def test_multi_recipient_one_transaction_and_baseid(
    harness_factory: Any, sink_factory: Any
) -> None:
    async with sink_factory(rcpt_replies={"bad@example.org": "550 5.1.1 no such user"}) as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        h.point_domain("other.example")
        h.recorder.suppress.add("bad@example.org")
        entries = await h.add(
            ["a@example.org", "bad@example.org", "b@example.org", "c@other.example"]
        )
        ids = [e.id for e in entries]
        assert [e.base_id for e in entries] == [ids[0]] * 4
        await h.wait_for(lambda: len(h.recorder.events) == 4)

        async def committed() -> bool:  # the recorder sees events before the commit
            return all([await h.queued(i) is None for i in ids])

        await h.wait_for(committed)
        assert h.recorder.events_for("a@example.org") == ["delivered"]
        assert h.recorder.events_for("b@example.org") == ["delivered"]
        assert h.recorder.events_for("c@other.example") == ["delivered"]
        assert h.recorder.events_for("bad@example.org") == ["failed"]
        bad = next(e for e in h.recorder.events if e.recipient == "bad@example.org")
        assert (bad.smtp_code, bad.smtp_enhanced_code, bad.suppressing) == (550, "5.1.1", True)
        assert "550 5.1.1 no such user" in bad.error
        msgs = sink.messages()
        # One transaction for the two good example.org recipients, one for other.example.
        assert sorted(sorted(m.rcpt_tos) for m in msgs) == [
            ["a@example.org", "b@example.org"],
            ["c@other.example"],
        ]
        # The suppress decision ran before the event, inside the transaction.
        names = [
            c[0] for c in h.recorder.calls if c[0] in ("suppress", "event") and "bad" in str(c[1])
        ]
        assert names == ["suppress", "event"]
        assert all(h.recorder.in_tx)
        # Failure DSN in the sender's Inbox, parsed back.
        inbox = await h.inbox()
        assert len(inbox) == 1 and inbox[0].is_dsn
        raw = await h.ctx.store.files.read(inbox[0].file_id)
        dsn = parse_dsn(raw)
        assert dsn is not None
        [r] = dsn.recipients
        assert r.action == "failed" and r.address == "bad@example.org"
        assert r.status == "5.1.1"
        assert r.diagnostic_code == "550 5.1.1 no such user"
        assert r.remote_mta == "mx.example.org"
        assert inbox[0].msg_prefix.startswith(
            b"Return-Path: <postmaster@mail.example>\r\nDelivered-To: mjl@mail.example\r\n"
        )
        assert b"References: <m1@mail.example>" in raw


async def test_fromid_unique_and_mail_from(harness_factory: Any, sink_factory: Any) -> None:
    h = await harness_factory(start=False)
    fid = generate_fromid()
    assert len(fid) == 22 and all(c.isalnum() or c in "-_" for c in fid)
    assert str(fromid_address(addr("mjl+zzz@mail.example"), "+", "ID1")) == "mjl+ID1@mail.example"
    [e] = await h.add([AddRecipient(addr("x@example.org"), from_id="chosen1")])
    assert (e.sender_localpart, e.from_id) == ("mjl+chosen1", "chosen1")
    with pytest.raises(FromIDNotUnique, match='fromid "chosen1" already present in message queue'):
        await h.add([AddRecipient(addr("y@example.org"), from_id="chosen1")])
    # webapi-style: one generated fromid per recipient, no BaseID.
    es = await h.add(["p@example.org", "q@example.org"], use_fromid=True)
    assert len({e.from_id for e in es}) == 2 and all(len(e.from_id) == 22 for e in es)
    assert all(e.base_id == 0 for e in es)
    assert es[0].sender_localpart == "mjl+" + es[0].from_id
    # Both a failing add and the successful ones: only successful rows exist, outgoing counted.
    n = await h.ctx.store.read(lambda c: c.execute("SELECT COUNT(*) FROM outgoing").fetchone()[0])
    assert n == 3
    assert await h.queue.count() == 3


async def test_large_message_is_delivered_byte_exact(harness_factory: Any, sink_factory: Any) -> None:
    """A message of several storage chunks (PostgreSQL stores 512 KiB per row) arrives whole."""
    line = b"0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz\r\n"
    body = (
        b"From: <mjl@mail.example>\r\nTo: <big@example.org>\r\nSubject: big\r\n"
        b"Message-Id: <big@mail.example>\r\n\r\n" + line * (1_300_000 // len(line))
    )
    async with sink_factory() as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        [e] = await h.add(["big@example.org"], body=body, msg_prefix=b"")

        async def retired() -> bool:
            return await h.queued(e.id) is None

        await h.wait_for(retired, timeout=20)
        [msg] = sink.messages()
        assert msg.data == body
        assert (await h.retired(e.id)).success
        # The delivery's temp copy (PostgreSQL) is gone with the delivery.
        assert list(h.ctx.store.files.tmp_dir.iterdir()) == []
