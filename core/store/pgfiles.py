"""Message bodies in PostgreSQL, so that any node can deliver any message.

A body is stored as rows of ``message_files`` (``file_id``, ``seq``,
``data``), chunks of :data:`CHUNK` bytes, in one transaction of its own that
commits before any row naming the file is written: the same durability
order as files on disk (a body without rows may exist after a crash; a row
never names a missing body). Bodies are never loaded whole to be delivered:
:meth:`PgMessageFiles.local_copy` streams them chunk by chunk into a temp
file (removed after) for the SMTP client and hooks that read a path.

Receiving still spools to a local temp file (SMTP DATA, webapi uploads):
``tmp_dir`` and :class:`core.store.files.TempMessage` are unchanged; the
finished temp file is copied into the database and removed.

Orphan bodies (stored, but the commit of their rows never happened) are
removed by the start-up check only when older than :data:`ORPHAN_AGE`:
another node sharing the database may be between storing a body and
committing its rows right now.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import trio

from core.store.files import MessageFiles
from core.store.migrations import Migration
from core.store.pg import PgConnection

if TYPE_CHECKING:  # pragma: no cover
    from core.store.pgengine import PostgresEngine

#: Bytes per row: large enough that a typical message is one row (one INSERT,
#: one round trip), small enough that a 100 MB message never sits in memory.
CHUNK = 512 * 1024
#: Unreferenced bodies younger than this are left alone by the start-up check.
ORPHAN_AGE = 3600.0

OWNER = "core-files-postgres"
MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        OWNER,
        1,
        """
CREATE TABLE message_files (
    file_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    -- Microseconds since the epoch, for the orphan check's age limit.
    created INTEGER NOT NULL,
    PRIMARY KEY (file_id, seq)
);
""",
        postgres="""
CREATE TABLE message_files (
    file_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    data BYTEA NOT NULL,
    created BIGINT NOT NULL,
    PRIMARY KEY (file_id, seq)
);
-- Mail is mostly compressed already (images, archives, base64): store the
-- chunks out of line without spending CPU on pglz.
ALTER TABLE message_files ALTER COLUMN data SET STORAGE EXTERNAL;
""",
    ),
)

_INSERT = "INSERT INTO message_files (file_id, seq, data, created) VALUES (?, ?, ?, ?)"


def _now_us() -> int:
    return int(time.time() * 1_000_000)


class PgMessageFiles(MessageFiles):
    """:class:`MessageFiles` whose files are rows in PostgreSQL (temp files stay local)."""

    def __init__(self, root: Path | str, engine: PostgresEngine) -> None:
        super().__init__(root)
        self._engine = engine

    def _conn(self) -> Any:
        return self._engine.connection()

    def path(self, file_id: str) -> Path:
        raise NotImplementedError(
            "message bodies are stored in PostgreSQL: read them with read() or local_copy()"
        )

    # -- writing ----------------------------------------------------------------

    def _insert_sync(self, chunks: Any) -> str:
        file_id = self.new_id()
        now = _now_us()
        with self._conn() as raw:
            conn = PgConnection(raw)
            first = next(chunks, b"")
            nxt = next(chunks, None)
            if nxt is None:  # one row: autocommit makes it atomic, one round trip
                conn.execute(_INSERT, (file_id, 0, first, now))
                return file_id
            conn.execute("BEGIN")
            try:
                conn.execute(_INSERT, (file_id, 0, first, now))
                seq = 1
                while nxt is not None:
                    conn.execute(_INSERT, (file_id, seq, nxt, now))
                    seq += 1
                    nxt = next(chunks, None)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        return file_id

    def _place_sync(self, tmp_path: Path) -> str:
        def chunks() -> Any:
            with open(tmp_path, "rb") as f:
                while True:
                    data = f.read(CHUNK)
                    if not data:
                        return
                    yield data

        file_id = self._insert_sync(chunks())
        os.unlink(tmp_path)
        return file_id

    def store_sync(self, data: bytes | Path) -> str:
        if isinstance(data, bytes | bytearray | memoryview):
            view = memoryview(data)
            return self._insert_sync(iter([bytes(view[i:i + CHUNK]) for i in range(0, max(len(view), 1), CHUNK)]))
        return self._place_sync(Path(data))

    # -- reading -----------------------------------------------------------------

    def _chunk_sync(self, conn: PgConnection, file_id: str, seq: int) -> bytes | None:
        row = conn.execute(
            "SELECT data FROM message_files WHERE file_id = ? AND seq = ?", (file_id, seq)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def _read_sync(self, file_id: str) -> bytes:
        self._check(file_id)
        with self._conn() as raw:
            rows = PgConnection(raw).execute(
                "SELECT data FROM message_files WHERE file_id = ? ORDER BY seq", (file_id,)
            ).fetchall()
        if not rows:
            raise FileNotFoundError(f"message file {file_id} not in the database")
        return b"".join(bytes(r[0]) for r in rows)

    async def read(self, file_id: str) -> bytes:
        return await trio.to_thread.run_sync(self._read_sync, file_id)

    def _size_sync(self, file_id: str) -> int:
        self._check(file_id)
        with self._conn() as raw:
            n, size = PgConnection(raw).execute(
                "SELECT COUNT(*), COALESCE(SUM(length(data)), 0) FROM message_files WHERE file_id = ?",
                (file_id,),
            ).fetchone()
        if not n:
            raise FileNotFoundError(f"message file {file_id} not in the database")
        return int(size)

    async def size(self, file_id: str) -> int:
        return await trio.to_thread.run_sync(self._size_sync, file_id)

    def _copy_out_sync(self, file_id: str, dest: Path) -> None:
        """Stream the chunks into ``dest``, one chunk in memory at a time."""
        self._check(file_id)
        with self._conn() as raw, open(dest, "wb") as out:
            conn = PgConnection(raw)
            seq = 0
            while (data := self._chunk_sync(conn, file_id, seq)) is not None:
                out.write(data)
                seq += 1
        if seq == 0:
            raise FileNotFoundError(f"message file {file_id} not in the database")

    @asynccontextmanager
    async def local_copy(self, file_id: str) -> AsyncIterator[Path]:
        """A temp file with the body, removed when the ``async with`` ends."""
        dest = self.tmp_dir / f"copy-{secrets.token_hex(8)}"
        try:
            await trio.to_thread.run_sync(self._copy_out_sync, file_id, dest)
            yield dest
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(lambda: dest.unlink(missing_ok=True))

    # -- removing and listing -----------------------------------------------------

    def remove_sync(self, file_id: str) -> bool:
        self._check(file_id)
        with self._conn() as raw:
            cur = PgConnection(raw).execute("DELETE FROM message_files WHERE file_id = ?", (file_id,))
            return cur.rowcount > 0

    def list_ids_sync(self) -> list[str]:
        with self._conn() as raw:
            rows = PgConnection(raw).execute("SELECT file_id FROM message_files WHERE seq = 0").fetchall()
        return sorted(r[0] for r in rows)

    def removable_ids_sync(self) -> list[str]:
        """Ids of bodies older than :data:`ORPHAN_AGE` (younger ones may be in flight)."""
        cutoff = _now_us() - int(ORPHAN_AGE * 1_000_000)
        with self._conn() as raw:
            rows = PgConnection(raw).execute(
                "SELECT file_id FROM message_files WHERE seq = 0 AND created < ?", (cutoff,)
            ).fetchall()
        return sorted(r[0] for r in rows)

    def _check(self, file_id: str) -> None:
        if not self.valid_id(file_id):
            from core.store.files import InvalidFileID

            raise InvalidFileID(f"invalid message file id {file_id!r}")
