"""Queue/retired rows: round trip of every field, fromid uniqueness across both, retire."""

from __future__ import annotations

from datetime import timedelta

import pytest

from core.store import Store
from core.store.models import MsgResult, QueueEntry, utcnow
from core.store.queue_rows import (
    FromIDNotUnique,
    QueueEntryNotFound,
    delete_expired_retired,
    get_queue_entry,
    get_retired,
    insert_queue_entry,
    retire,
    retired_by_from_id,
    update_queue_entry,
)


def _entry(**kw: object) -> QueueEntry:
    now = utcnow()
    base: dict[str, object] = dict(
        queued=now,
        next_attempt=now,
        sender_account="mjl",
        sender_localpart="mjl",
        sender_domain="localhost",
        sender_domain_str="localhost",
        recipient_localpart="rcpt",
        recipient_domain="xn--bcher-kva.example",
        recipient_domain_str="bücher.example",
    )
    base.update(kw)
    return QueueEntry(**base)  # type: ignore[arg-type]


async def test_round_trip_all_fields(store: Store) -> None:
    now = utcnow()
    e = _entry(
        from_id="abc",
        require_tls=False,
        extra={"userid": "123"},
        msg_prefix=b"DKIM-Signature: x\r\n",
        dsn_utf8=b"\xe2\x98\xba",
        dialed_ips={"mx.example": ["192.0.2.1"]},
        results=[MsgResult(start=now, duration_ns=25, code=451, secode="3.0", error="e")],
        last_attempt=now,
        has8bit=True,
        future_release_request="until;2026-11-24T01:01:49+02:00",
    )
    eid = await store.write(lambda c: insert_queue_entry(c, e))
    assert e.id == eid
    got = await store.read(lambda c: get_queue_entry(c, eid))
    assert got == e
    assert got.recipient == "rcpt@bücher.example"
    assert got.require_tls is False
    none_tls = _entry()
    nid = await store.write(lambda c: insert_queue_entry(c, none_tls))
    assert (await store.read(lambda c: get_queue_entry(c, nid))).require_tls is None

    got.attempts = 1
    got.hold = True
    await store.write(lambda c: update_queue_entry(c, got))
    assert (await store.read(lambda c: get_queue_entry(c, eid))).hold is True


async def test_from_id_unique_across_queue_and_retired(store: Store) -> None:
    now = utcnow()
    first = _entry(from_id="chosen")
    eid = await store.write(lambda c: insert_queue_entry(c, first))
    with pytest.raises(FromIDNotUnique, match="already present in message queue"):
        await store.write(lambda c: insert_queue_entry(c, _entry(from_id="chosen")))
    await store.write(
        lambda c: retire(c, eid, success=True, now=now, keep_until=now + timedelta(days=1))
    )
    with pytest.raises(
        FromIDNotUnique, match='fromid "chosen" already present in retired message queue'
    ):
        await store.write(lambda c: insert_queue_entry(c, _entry(from_id="chosen")))
    # Empty fromids never collide.
    await store.write(lambda c: insert_queue_entry(c, _entry()))
    await store.write(lambda c: insert_queue_entry(c, _entry()))


async def test_retire_keeps_id_and_drops_unkept_fields(store: Store) -> None:
    now = utcnow()
    fid = await store.files.store(b"x")
    e = _entry(from_id="f1", msg_prefix=b"P", extra={"a": "b"}, file_id=fid, hold=True)
    eid = await store.write(lambda c: insert_queue_entry(c, e))
    got_fid = await store.write(
        lambda c: retire(c, eid, success=False, now=now, keep_until=now + timedelta(days=3))
    )
    assert got_fid == fid
    with pytest.raises(QueueEntryNotFound):
        await store.read(lambda c: get_queue_entry(c, eid))
    r = await store.read(lambda c: get_retired(c, eid))
    assert r.id == eid and r.success is False and r.extra == {"a": "b"}
    assert r.recipient_address == "rcpt@bücher.example"
    assert r.msg_prefix == b"" and r.file_id == "" and r.hold is False
    assert r.last_activity == now and r.keep_until == now + timedelta(days=3)
    assert (await store.read(lambda c: retired_by_from_id(c, "f1"))) == r
    assert await store.remove_unreferenced([fid]) == [fid]
    # New queue IDs never reuse a retired one.
    nid = await store.write(lambda c: insert_queue_entry(c, _entry()))
    assert nid > eid
    assert await store.write(lambda c: delete_expired_retired(c, now + timedelta(days=4))) == 1


def test_attempt_mx_host_and_tls_round_trip_and_old_rows_read_without_them() -> None:
    now = utcnow()
    r = MsgResult(start=now, code=250, success=True, mx_host="mx.example.org", tls=True)
    d = r.to_json()
    assert d["mxhost"] == "mx.example.org" and d["tls"] is True
    back = MsgResult.from_json(d)
    assert (back.mx_host, back.tls) == ("mx.example.org", True)
    # Results written before these keys existed (and attempts that dialed nothing).
    old = {"start": d["start"], "duration": 5, "success": False, "code": 451, "secode": "", "error": "x"}
    assert MsgResult(start=now).to_json().keys() == old.keys()
    back = MsgResult.from_json(old)
    assert (back.mx_host, back.tls, back.code) == ("", False, 451)
