"""A delivery whose outcome the store cannot record is never delivered again.

The store's failure is real: a trigger makes SQLite refuse to take the entry
out of the queue (as a full disk refuses any write), while the mailbox
delivery on our own listener still commits. The queue keeps trying to
record the outcome instead of retrying the delivery after the backoff; and
when the server stops meanwhile, the next start records it as delivered
(the listener marked the entry in the transaction that stored the message).
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import trio

from core.queue.clock import FakeClock
from core.runtime import Server
from tests.smtp_e2e.conftest import in_thread, ip_of, submit, wait_rows
from tests.support.inproc import localserve_config_dir, running_server

REFUSE = (
    "CREATE TRIGGER refuse_retire BEFORE DELETE ON queue"
    " BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END"
)
MSG = b"From: mox@localhost\r\nTo: x@example.org\r\nSubject: once-only\r\n\r\nbody\r\n"
COPIES = (
    "SELECT COUNT(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
    " WHERE m.subject = 'once-only' AND b.name != 'Sent'"
)

EMPTY = "SELECT 1 WHERE (SELECT COUNT(*) FROM queue) = 0"


async def _copies(server: Server) -> int:
    assert server.ctx is not None
    return int(await server.ctx.store.read(lambda c: c.execute(COPIES).fetchone()[0]))


async def _refuse(server: Server, on: bool) -> None:
    assert server.ctx is not None
    sql = REFUSE if on else "DROP TRIGGER refuse_retire"
    await server.ctx.store.write(lambda c: c.execute(sql))


async def _deliver_unrecordable(server: Server) -> None:
    """Submit with the queue unable to record outcomes; wait for the mailbox copy."""
    await _refuse(server, True)
    await in_thread(lambda: submit(ip_of(server), ["x@example.org"], MSG))
    await wait_rows(server, COPIES.replace("COUNT(*)", "m.id"))


async def test_outcome_recorded_late_is_not_delivered_twice(tmp_path: Path) -> None:
    directory, _ = localserve_config_dir(tmp_path)
    clock = FakeClock()
    async with running_server(directory, clock=clock) as server:
        await _deliver_unrecordable(server)
        # The recording keeps failing; past the backoff a redelivery would be due.
        await trio.sleep(1.0)
        clock.advance(timedelta(minutes=20))
        await trio.sleep(1.0)
        assert await _copies(server) == 1
        await _refuse(server, False)
        await wait_rows(server, EMPTY)
        clock.advance(timedelta(hours=2))
        await trio.sleep(0.5)
        assert await _copies(server) == 1


async def test_outcome_left_unrecorded_at_stop_is_settled_at_start(tmp_path: Path) -> None:
    directory, _ = localserve_config_dir(tmp_path)
    clock = FakeClock()
    async with running_server(directory, clock=clock) as server:
        await _deliver_unrecordable(server)
        await trio.sleep(0.5)
    db = sqlite3.connect(directory / "moxtrio.db")
    try:
        (results,) = db.execute("SELECT results FROM queue").fetchone()
        assert "delivered, result not yet recorded" in results
        db.execute("DROP TRIGGER refuse_retire")
        db.commit()
    finally:
        db.close()
    async with running_server(directory, clock=clock) as server:
        await wait_rows(server, EMPTY)
        clock.advance(timedelta(hours=2))
        await trio.sleep(0.5)
        assert await _copies(server) == 1
