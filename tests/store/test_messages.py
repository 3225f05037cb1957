"""Messages: insert/get/list, flags and keywords (mox rules), move, delete, outgoing."""

from __future__ import annotations

import sqlite3
from datetime import timedelta

import pytest
import trio

from core.store import Store
from core.store.accounts import MailboxNotFound, ensure_account
from core.store.messages import (
    AlreadyInMailbox,
    InvalidFlag,
    InvalidMessageID,
    MessageNotFound,
    MessageRemoved,
    add_flags,
    count_first_time_recipients,
    count_outgoing,
    delete_message_durably,
    get_message,
    insert_message,
    list_messages,
    move_message,
    parse_flags,
    prune_outgoing,
    record_outgoing,
    remove_flags,
    set_flags,
)
from core.store.models import MessageMeta, utcnow

RAW = b"From: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


async def _new_message(store: Store, account: str = "mjl", mailbox: str = "Inbox") -> int:
    await store.write(lambda c: ensure_account(c, account))
    file_id = await store.files.store(RAW)
    meta = MessageMeta(
        mail_from="a@example.org",
        mail_from_localpart="a",
        mail_from_domain="example.org",
        mail_from_validated=True,
        rcpt_to_localpart="mjl",
        rcpt_to_domain="localhost",
        remote_ip="127.0.0.1",
        message_id="<m1@example.org>",
        subject="hi",
        dkim_domains=["example.org"],
        msg_prefix=b"Received: x\r\n",
    )

    def fn(c: sqlite3.Connection) -> int:
        return insert_message(c, account, mailbox, file_id, len(RAW) + 13, meta=meta)

    return await store.write(fn)


async def test_insert_and_get_message(store: Store) -> None:
    mid = await _new_message(store)
    msg = await store.read(lambda c: get_message(c, "mjl", mid))
    assert msg.id == mid and msg.mailbox_name == "Inbox"
    assert msg.size == len(RAW) + 13
    assert msg.rcpt_to == "mjl@localhost"
    assert msg.mail_from_validated and msg.dkim_domains == ["example.org"]
    assert msg.msg_prefix == b"Received: x\r\n"
    assert msg.flag_list() == []
    assert await store.files.read(msg.file_id) == RAW
    assert abs((msg.received - utcnow()).total_seconds()) < 10
    # Not visible from another account.
    await store.write(lambda c: ensure_account(c, "other"))
    with pytest.raises(MessageNotFound, match="^no such message$"):
        await store.read(lambda c: get_message(c, "other", mid))
    with pytest.raises(MessageNotFound):
        await store.read(lambda c: get_message(c, "mjl", mid + 100))
    with pytest.raises(InvalidMessageID, match="^invalid zero message id$"):
        await store.read(lambda c: get_message(c, "mjl", 0))


async def test_flags_and_keywords(store: Store) -> None:
    mid = await _new_message(store)
    msg = await store.write(
        lambda c: add_flags(c, "mjl", mid, ["\\Seen", "$Junk", "CUSTOM", "\\flagged", "$forwarded"])
    )
    # mox's observed order: system flags in fixed order, then keywords.
    assert msg.flag_list() == ["$forwarded", "$junk", "\\flagged", "\\seen", "custom"]
    msg = await store.write(lambda c: add_flags(c, "mjl", mid, ["custom", "Zeta", "alpha"]))
    assert msg.keywords == ["alpha", "custom", "zeta"]
    msg = await store.write(lambda c: remove_flags(c, "mjl", mid, ["custom", "\\SEEN", "nothere"]))
    assert msg.flag_list() == ["$forwarded", "$junk", "\\flagged", "alpha", "zeta"]
    msg = await store.write(lambda c: add_flags(c, "mjl", mid, []))
    assert msg.flag_list() == ["$forwarded", "$junk", "\\flagged", "alpha", "zeta"]
    msg = await store.write(lambda c: set_flags(c, "mjl", mid, ["\\Draft", "k"]))
    assert msg.flag_list() == ["\\draft", "k"]
    # Persisted, not just returned.
    again = await store.read(lambda c: get_message(c, "mjl", mid))
    assert again.flag_list() == ["\\draft", "k"]


@pytest.mark.parametrize("bad", ["bad flag", "\\Recent", "\\unknownsys", "", "a(b", "x]", "é"])
def test_invalid_keywords(bad: str) -> None:
    with pytest.raises(InvalidFlag) as info:
        parse_flags(["\\seen", bad])
    assert str(info.value) == f"invalid keyword {bad.lower()}"


async def test_invalid_flag_changes_nothing(store: Store) -> None:
    mid = await _new_message(store)
    with pytest.raises(InvalidFlag):
        await store.write(lambda c: add_flags(c, "mjl", mid, ["\\seen", "bad flag"]))
    msg = await store.read(lambda c: get_message(c, "mjl", mid))
    assert msg.flag_list() == []


async def test_move_message(store: Store) -> None:
    mid = await _new_message(store)
    msg = await store.write(lambda c: move_message(c, "mjl", mid, "Archive"))
    assert msg.id == mid and msg.mailbox_name == "Archive"
    with pytest.raises(AlreadyInMailbox, match=f"^message {mid} already in destination mailbox$"):
        await store.write(lambda c: move_message(c, "mjl", mid, "Archive"))
    with pytest.raises(MailboxNotFound, match="^not found$"):
        await store.write(lambda c: move_message(c, "mjl", mid, "archive"))
    msg = await store.write(
        lambda c: move_message(c, "mjl", mid, "Junk", add=["$junk"], remove=["$notjunk"])
    )
    assert msg.mailbox_name == "Junk" and msg.flag_list() == ["$junk"]
    in_junk = await store.read(lambda c: list_messages(c, "mjl", "Junk"))
    in_inbox = await store.read(lambda c: list_messages(c, "mjl", "Inbox"))
    assert [m.id for m in in_junk] == [mid] and in_inbox == []


async def test_delete_message_and_file(store: Store) -> None:
    mid = await _new_message(store)
    mid2 = await _new_message(store)
    msg = await store.read(lambda c: get_message(c, "mjl", mid))
    assert msg.file_id in await trio.to_thread.run_sync(store.files.list_ids_sync)
    await delete_message_durably(store, "mjl", mid)
    assert msg.file_id not in await trio.to_thread.run_sync(store.files.list_ids_sync)
    with pytest.raises(MessageRemoved, match="^message was removed$"):
        await store.read(lambda c: get_message(c, "mjl", mid))
    with pytest.raises(MessageRemoved):
        await delete_message_durably(store, "mjl", mid)
    with pytest.raises(MessageNotFound):
        await delete_message_durably(store, "mjl", 999999)
    assert [m.id for m in await store.read(lambda c: list_messages(c, "mjl"))] == [mid2]


async def test_shared_file_kept_while_referenced(store: Store) -> None:
    await store.write(lambda c: ensure_account(c, "mjl"))
    fid = await store.files.store(RAW)
    a = await store.write(lambda c: insert_message(c, "mjl", "Inbox", fid, len(RAW)))
    b = await store.write(lambda c: insert_message(c, "mjl", "Sent", fid, len(RAW)))
    await delete_message_durably(store, "mjl", a)
    assert fid in await trio.to_thread.run_sync(store.files.list_ids_sync)
    await delete_message_durably(store, "mjl", b)
    assert fid not in await trio.to_thread.run_sync(store.files.list_ids_sync)


async def test_list_messages_paging(store: Store) -> None:
    ids = [await _new_message(store) for _ in range(5)]
    page1 = await store.read(lambda c: list_messages(c, "mjl", limit=2))
    page2 = await store.read(lambda c: list_messages(c, "mjl", after_id=page1[-1].id, limit=10))
    assert [m.id for m in page1 + page2] == ids


async def test_outgoing_counts(store: Store) -> None:
    now = utcnow()
    old = now - timedelta(days=3)
    day = now - timedelta(hours=2)

    def setup(c: sqlite3.Connection) -> None:
        record_outgoing(c, "mjl", ["old@x"], old)
        record_outgoing(c, "mjl", ["old@x", "new1@x"], day)
        record_outgoing(c, "mjl", ["new1@x", "new2@x"], day + timedelta(minutes=5))
        record_outgoing(c, "other", ["z@x"], day)

    await store.write(setup)
    assert await store.read(lambda c: count_outgoing(c, "mjl", now - timedelta(hours=24))) == 4
    assert await store.read(lambda c: count_outgoing(c, "other", now - timedelta(hours=24))) == 1
    # In the window: old@x was seen before (not first-time), new1@x and new2@x are.
    # New: new3@x first-time; new1@x has an earlier record.
    n = await store.read(
        lambda c: count_first_time_recipients(c, "mjl", ["new3@x", "new1@x", "new3@x"], now)
    )
    assert n == 3


async def test_prune_outgoing_keeps_the_answers_of_the_daily_limits(store: Store) -> None:
    """Old records go, but the limits' counts and first-time answers do not change."""
    now = utcnow()
    weeks = [now - timedelta(days=d) for d in (400, 100, 30, 10)]

    def setup(c: sqlite3.Connection) -> None:
        for t in weeks:
            record_outgoing(c, "mjl", ["often@x"], t)
        record_outgoing(c, "mjl", ["once-long-ago@x"], weeks[0])
        record_outgoing(c, "mjl", ["often@x", "recent@x"], now - timedelta(days=3))
        record_outgoing(c, "mjl", ["often@x", "fresh@x"], now - timedelta(hours=2))
        record_outgoing(c, "other", ["often@x"], weeks[0])
        record_outgoing(c, "other", ["often@x"], weeks[1])

    await store.write(setup)

    def answers(c: sqlite3.Connection) -> list[int]:
        since = now - timedelta(hours=24)
        return [
            count_outgoing(c, "mjl", since),
            count_outgoing(c, "other", since),
            count_first_time_recipients(c, "mjl", [], now),
            count_first_time_recipients(c, "mjl", ["often@x", "once-long-ago@x", "new@x"], now),
            count_first_time_recipients(c, "other", ["often@x", "recent@x"], now),
        ]

    def rows(c: sqlite3.Connection) -> int:
        return int(c.execute("SELECT COUNT(*) FROM outgoing").fetchone()[0])

    before = await store.read(answers)
    assert before == [2, 0, 1, 2, 1]
    assert await store.read(rows) == 11
    # A small batch bounds one run; the next run goes on.
    assert await store.write(lambda c: prune_outgoing(c, now, batch=2)) == 2
    assert await store.write(lambda c: prune_outgoing(c, now)) == 2
    assert await store.write(lambda c: prune_outgoing(c, now)) == 0
    # Kept: the newest old record per account and recipient, and the last week.
    assert await store.read(rows) == 7
    assert await store.read(answers) == before
