"""Message files: durable write order, streaming, path safety, orphan cleanup."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
import trio

from core.store import Store
from core.store.accounts import ensure_account
from core.store.files import InvalidFileID, MessageFiles
from core.store.messages import insert_message
from core.store.models import QueueEntry, utcnow
from core.store.pgfiles import ORPHAN_AGE
from core.store.queue_rows import insert_queue_entry


async def age_bodies(store: Store) -> None:
    """On PostgreSQL, make every stored body older than the orphan check's age limit."""
    if store.dialect == "postgres":
        shift = int((ORPHAN_AGE + 60) * 1_000_000)
        await store.write(lambda c: c.execute("UPDATE message_files SET created = created - ?", (shift,)))


class FsyncLog:
    """Real fsync, recording what each call flushed (path of the descriptor)."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def __call__(self, fd: int) -> None:
        self.paths.append(os.readlink(f"/proc/self/fd/{fd}"))
        os.fsync(fd)


async def test_store_bytes_fsyncs_file_then_directory(tmp_path: Path) -> None:
    log = FsyncLog()
    files = MessageFiles(tmp_path / "msg", fsync=log)
    files.setup_sync()
    log.paths.clear()
    fid = await files.store(b"hello\r\n")
    assert MessageFiles.valid_id(fid) and fid[:2] == fid[3:5]
    final = files.path(fid)
    assert final.read_bytes() == b"hello\r\n"
    # 1. the temp file's data, 2. the new fan-out dir's entry in root, 3. the
    # directory holding the renamed file.
    assert len(log.paths) == 3
    assert Path(log.paths[0]).parent == files.tmp_dir
    assert log.paths[1:] == [str(files.root), str(final.parent)]
    assert list(files.tmp_dir.iterdir()) == []
    assert await files.read(fid) == b"hello\r\n"


async def test_streamed_temp_message(tmp_path: Path) -> None:
    log = FsyncLog()
    files = MessageFiles(tmp_path / "msg", fsync=log)
    files.setup_sync()
    chunk = os.urandom(100_000)
    async with files.new_temp() as tmp:
        for _ in range(7):  # larger than the in-memory buffer
            await tmp.write(chunk)
        assert tmp.size == 700_000
        fid = await tmp.commit()
    assert files.path(fid).read_bytes() == chunk * 7
    assert log.paths[-1] == str(files.path(fid).parent)
    assert list(files.tmp_dir.iterdir()) == []
    # Discarded (e.g. message too large): nothing left behind.
    async with files.new_temp() as tmp:
        await tmp.write(chunk * 3)
    assert list(files.tmp_dir.iterdir()) == []
    assert files.list_ids_sync() == [fid]
    # From an iterator of chunks.
    fid2 = await files.store_chunks(iter([b"a", b"b", b"c"]))
    assert files.path(fid2).read_bytes() == b"abc"


async def test_store_from_temp_path_moves_it(tmp_path: Path) -> None:
    files = MessageFiles(tmp_path / "msg")
    files.setup_sync()
    src = files.tmp_dir / "incoming"
    src.write_bytes(b"data")
    fid = await files.store(src)
    assert not src.exists()
    assert files.path(fid).read_bytes() == b"data"
    assert await files.remove(fid) is True
    assert await files.remove(fid) is False


@pytest.mark.parametrize("bad", ["../../etc/passwd", "ab/../../x", "/abs", "ab/" + "g" * 32, ""])
def test_path_refuses_foreign_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidFileID):
        MessageFiles(tmp_path).path(bad)


async def test_check_files_removes_orphans_and_reports_missing(store: Store) -> None:
    await store.write(lambda c: ensure_account(c, "mjl"))
    in_mailbox = await store.files.store(b"m")
    in_queue = await store.files.store(b"q")
    orphan = await store.files.store(b"o")
    missing = MessageFiles.new_id()
    (store.files.tmp_dir / "new-leftover").write_bytes(b"partial")

    def rows(c: sqlite3.Connection) -> None:
        insert_message(c, "mjl", "Inbox", in_mailbox, 1)
        insert_message(c, "mjl", "Inbox", missing, 1)
        now = utcnow()
        insert_queue_entry(
            c,
            QueueEntry(
                queued=now,
                next_attempt=now,
                sender_account="mjl",
                sender_localpart="mjl",
                sender_domain="localhost",
                sender_domain_str="localhost",
                recipient_localpart="r",
                recipient_domain="example.org",
                recipient_domain_str="example.org",
                file_id=in_queue,
            ),
        )

    await store.write(rows)
    await age_bodies(store)
    reported = await store.check_files()
    assert reported == [missing]
    stored = await trio.to_thread.run_sync(store.files.list_ids_sync)
    assert in_mailbox in stored and in_queue in stored
    assert orphan not in stored
    assert list(store.files.tmp_dir.iterdir()) == []


async def test_check_files_honours_plugin_references(store: Store) -> None:
    await store.write(lambda c: c.execute("CREATE TABLE plug_files (fid TEXT)"))
    fid = await store.files.store(b"plugin")
    await store.write(lambda c: c.execute("INSERT INTO plug_files VALUES (?)", (fid,)))
    store.add_file_reference("plug_files", "fid")
    await age_bodies(store)
    assert await store.check_files() == []
    assert fid in await trio.to_thread.run_sync(store.files.list_ids_sync)
