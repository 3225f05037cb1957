"""Group commit, savepoint isolation, durability settings, reads, close."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import trio

from core.store import Store, StoreClosed, WriteAborted
from core.store.messages import record_outgoing
from core.store.models import utcnow
from core.store.sql import Connection, DatabaseError, IntegrityError


def _insert(tag: str) -> Callable[[sqlite3.Connection], int]:
    def fn(conn: sqlite3.Connection) -> int:
        record_outgoing(conn, "acc", [tag], utcnow())
        return int(conn.execute("SELECT MAX(id) FROM outgoing").fetchone()[0])

    return fn


def _blocker(
    started: threading.Event, seconds: float = 0.3
) -> Callable[[sqlite3.Connection], None]:
    """A write that keeps the writer thread busy, so the next writes queue up."""

    def fn(conn: sqlite3.Connection) -> None:
        started.set()
        time.sleep(seconds)

    return fn


async def _hold_writer(store: Store, nursery: trio.Nursery, seconds: float = 0.3) -> None:
    started = threading.Event()
    nursery.start_soon(store.write, _blocker(started, seconds))
    await trio.to_thread.run_sync(started.wait, 5)


async def test_settings_are_wal_full_foreign_keys(store: Store) -> None:
    if store.dialect == "postgres":
        # A COMMIT returns only once the WAL is flushed (the 250/200 rule).
        def settings(conn: Connection) -> tuple[str, str]:
            return (
                conn.execute("SHOW synchronous_commit").fetchone()[0],
                conn.execute("SHOW default_transaction_read_only").fetchone()[0],
            )

        assert await store.write(settings) == ("on", "off")
        return

    def pragmas(conn: sqlite3.Connection) -> tuple[str, int, int]:
        return (
            conn.execute("PRAGMA journal_mode").fetchone()[0],
            conn.execute("PRAGMA synchronous").fetchone()[0],
            conn.execute("PRAGMA foreign_keys").fetchone()[0],
        )

    assert await store.write(pragmas) == ("wal", 2, 1)  # 2 == FULL
    assert store.db_path.name == "moxtrio.db"
    assert store.db_path.exists()


async def test_many_concurrent_writers_are_batched(store: Store) -> None:
    n = 200
    results: dict[int, int] = {}
    commits_before = store.stats.commits

    async def one(i: int) -> None:
        results[i] = await store.write(_insert(f"r{i}@x"))

    async with trio.open_nursery() as nursery:
        await _hold_writer(store, nursery)
        for i in range(n):
            nursery.start_soon(one, i)

    commits = store.stats.commits - commits_before
    assert len(results) == n
    assert commits < n // 10, f"{commits} commits for {n} writes: not batched"
    assert store.stats.max_batch >= 50

    def rows(conn: sqlite3.Connection) -> dict[int, str]:
        return {r[0]: r[1] for r in conn.execute("SELECT id, recipient FROM outgoing")}

    stored = await store.read(rows)
    # Every caller got the id of its own row.
    for i, rowid in results.items():
        assert stored[rowid] == f"r{i}@x"
    assert len(stored) == n


async def test_failing_write_only_rolls_back_itself(store: Store) -> None:
    outcomes: dict[str, object] = {}

    def bad(conn: sqlite3.Connection) -> None:
        record_outgoing(conn, "acc", ["bad@x"], utcnow())
        raise ValueError("boom")

    def bad_sql(conn: sqlite3.Connection) -> None:
        record_outgoing(conn, "acc", ["badsql@x"], utcnow())
        conn.execute("INSERT INTO accounts (name, created) VALUES (NULL, NULL)")

    async def run(name: str, fn: Callable[[sqlite3.Connection], object]) -> None:
        try:
            outcomes[name] = await store.write(fn)
        except Exception as exc:
            outcomes[name] = exc

    async with trio.open_nursery() as nursery:
        await _hold_writer(store, nursery)
        commits_before = store.stats.commits
        nursery.start_soon(run, "a", _insert("a@x"))
        await trio.sleep(0.01)
        nursery.start_soon(run, "bad", bad)
        await trio.sleep(0.01)
        nursery.start_soon(run, "badsql", bad_sql)
        await trio.sleep(0.01)
        nursery.start_soon(run, "c", _insert("c@x"))

    # One blocker commit + one commit for the four queued writes.
    assert store.stats.commits - commits_before == 2
    assert isinstance(outcomes["bad"], ValueError) and str(outcomes["bad"]) == "boom"
    assert isinstance(outcomes["badsql"], IntegrityError)
    assert isinstance(outcomes["a"], int) and isinstance(outcomes["c"], int)
    recips = await store.read(
        lambda c: sorted(r[0] for r in c.execute("SELECT recipient FROM outgoing"))
    )
    assert recips == ["a@x", "c@x"]


async def test_write_is_not_interrupted_by_cancellation(store: Store) -> None:
    got: list[int] = []
    async with trio.open_nursery() as nursery:
        await _hold_writer(store, nursery)

        async def cancelled_writer() -> None:
            with trio.move_on_after(0.05):
                got.append(await store.write(_insert("keep@x")))

        await cancelled_writer()
    # The caller was told the outcome despite the deadline, and the row is there.
    assert len(got) == 1
    n = await store.read(lambda c: c.execute("SELECT COUNT(*) FROM outgoing").fetchone()[0])
    assert n == 1


async def test_reads_run_in_threads_read_only_and_see_commits(store: Store) -> None:
    main = threading.get_ident()
    await store.write(_insert("x@y"))
    ident, count = await store.read(
        lambda c: (threading.get_ident(), c.execute("SELECT COUNT(*) FROM outgoing").fetchone()[0])
    )
    assert ident != main
    assert count == 1
    with pytest.raises(DatabaseError):
        await store.read(lambda c: c.execute("DELETE FROM outgoing"))
    # A failed read does not poison the pool.
    assert await store.read(lambda c: c.execute("SELECT 1").fetchone()[0]) == 1


async def test_writes_run_off_the_trio_thread(store: Store) -> None:
    main = threading.get_ident()
    assert await store.write(lambda c: threading.get_ident()) != main


async def test_aclose_drains_pending_writes(tmp_path: Path) -> None:
    store = await Store.open(tmp_path)
    results: list[int] = []

    async def one(i: int) -> None:
        results.append(await store.write(_insert(f"{i}@x")))

    async with trio.open_nursery() as nursery:
        await _hold_writer(store, nursery, 0.2)
        for i in range(30):
            nursery.start_soon(one, i)
        await trio.sleep(0.05)
        await store.aclose()
    assert len(results) == 30
    with pytest.raises(StoreClosed):
        await store.write(_insert("late@x"))

    conn = sqlite3.connect(tmp_path / "moxtrio.db")
    assert conn.execute("SELECT COUNT(*) FROM outgoing").fetchone()[0] == 30
    conn.close()


async def test_store_reopens_with_data(tmp_path: Path) -> None:
    async with await Store.open(tmp_path) as s:
        rowid = await s.write(_insert("persist@x"))
    async with await Store.open(tmp_path) as s:
        got = await s.read(
            lambda c: c.execute("SELECT recipient FROM outgoing WHERE id = ?", (rowid,)).fetchone()[
                0
            ]
        )
    assert got == "persist@x"


async def test_write_that_ends_the_transaction_is_contained(store: Store) -> None:
    """A fn that ROLLBACKs the shared transaction: its batch-mates hear the truth, the writer goes on."""
    outcomes: dict[str, object] = {}

    def rogue(conn: sqlite3.Connection) -> None:
        conn.execute("ROLLBACK")

    async def run(name: str, fn: Callable[[sqlite3.Connection], object]) -> None:
        try:
            outcomes[name] = await store.write(fn)
        except Exception as exc:
            outcomes[name] = exc

    async with trio.open_nursery() as nursery:
        await _hold_writer(store, nursery)
        nursery.start_soon(run, "before", _insert("before@x"))
        await trio.sleep(0.01)
        nursery.start_soon(run, "rogue", rogue)
        await trio.sleep(0.01)
        nursery.start_soon(run, "after", _insert("after@x"))

    assert isinstance(outcomes["before"], WriteAborted)
    assert isinstance(outcomes["rogue"], RuntimeError)
    assert isinstance(outcomes["after"], int)
    recips = await store.read(lambda c: [r[0] for r in c.execute("SELECT recipient FROM outgoing")])
    assert recips == ["after@x"]
    assert isinstance(await store.write(_insert("later@x")), int)
