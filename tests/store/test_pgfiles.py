"""Message bodies in PostgreSQL: chunked storage, streamed copies, orphans by age."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from core.store import Store
from core.store.pgfiles import CHUNK, PgMessageFiles
from core.store.settings import DatabaseSettings
from tests.store.test_files import age_bodies


@pytest.fixture
async def pgstore(tmp_path: Path, pg_database: DatabaseSettings) -> AsyncIterator[Store]:
    s = await Store.open(tmp_path / "data", database=pg_database)
    try:
        yield s
    finally:
        await s.aclose()


async def _chunks(store: Store, fid: str) -> list[int]:
    rows = await store.read(
        lambda c: c.execute(
            "SELECT length(data) FROM message_files WHERE file_id = ? ORDER BY seq", (fid,)
        ).fetchall()
    )
    return [r[0] for r in rows]


async def test_bodies_are_rows_in_chunks_and_read_back(pgstore: Store) -> None:
    files = pgstore.files
    assert isinstance(files, PgMessageFiles)
    small = await files.store(b"hello\r\n")
    assert await _chunks(pgstore, small) == [7]
    big_data = bytes(range(256)) * (2 * CHUNK // 256 + 100)
    big = await files.store(big_data)
    assert await _chunks(pgstore, big) == [CHUNK, CHUNK, len(big_data) - 2 * CHUNK]
    assert await files.read(big) == big_data
    assert await files.size(big) == len(big_data)
    assert await files.read(small) == b"hello\r\n"
    # Nothing of it on local disk but the (empty) temp area.
    assert [p.name for p in files.root.iterdir()] == ["tmp"]
    with pytest.raises(NotImplementedError):
        files.path(small)


async def test_streamed_temp_message_and_local_copy(pgstore: Store) -> None:
    files = pgstore.files
    chunk = b"x" * 100_000 + b"\r\n"
    async with files.new_temp() as tmp:
        for _ in range(12):
            await tmp.write(chunk)
        fid = await tmp.commit()
    assert list(files.tmp_dir.iterdir()) == []
    assert len(await _chunks(pgstore, fid)) == 3
    async with files.local_copy(fid) as path:
        assert path.parent == files.tmp_dir
        assert path.read_bytes() == chunk * 12
    assert not path.exists()
    with pytest.raises(FileNotFoundError):
        async with files.local_copy(files.new_id()):
            pass
    assert list(files.tmp_dir.iterdir()) == []


async def test_remove_and_orphans_only_when_old(pgstore: Store) -> None:
    files = pgstore.files
    old = await files.store(b"old orphan")
    await age_bodies(pgstore)
    young = await files.store(b"young orphan, maybe another node's in-flight message")
    assert await pgstore.check_files() == []
    stored = await trio.to_thread.run_sync(files.list_ids_sync)
    assert old not in stored and young in stored
    assert await files.remove(young) is True
    assert await files.remove(young) is False
    assert await trio.to_thread.run_sync(files.list_ids_sync) == []
