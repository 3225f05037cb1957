"""Message files under ``<data_dir>/msg/``, written durably before any row names them.

The durability order is: write to a temp file, fsync it, rename
it into place, fsync the directory, and only then commit the rows that
reference it. So after a crash a file may exist without a row (removed at
start by :meth:`core.store.db.Store.check_files`), but a committed row
never names a file that is not on disk.

File ids are ``xx/<32 hex>``: random, so ids never collide or get reused,
and fanned out over 256 directories so no directory grows huge.

This is the store's file backend on SQLite. On PostgreSQL the bodies live in
the database (:class:`core.store.pgfiles.PgMessageFiles`, same interface),
so every node can read every message. Code that needs a file on disk (a
delivery streaming it, a plugin hook's ``message_path``) asks for
:meth:`MessageFiles.local_copy`: the stored file itself here, a temporary
copy streamed in chunks from the database there. :meth:`MessageFiles.path`
exists only for disk files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import trio

from core.workers import BLOCKING

_ID_RE = re.compile(r"^[0-9a-f]{2}/[0-9a-f]{32}$")
_TEMP_BUFFER = 256 * 1024


class InvalidFileID(ValueError):
    """A file id that is not one this store hands out (guards against path tricks)."""


class MessageFiles:
    """The message file area. All blocking IO runs in worker threads.

    ``fsync`` is the function used to flush a file descriptor (``os.fsync``);
    tests pass a recording wrapper to check the durability order.
    """

    def __init__(self, root: Path | str, *, fsync: Callable[[int], None] = os.fsync) -> None:
        self.root = Path(root)
        self.tmp_dir = self.root / "tmp"
        self._fsync = fsync

    def _fsync_dir(self, path: Path | str) -> None:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)

    def setup_sync(self) -> None:
        """Create the directories (idempotent); fsyncs parents of new ones."""
        for d in (self.root, self.tmp_dir):
            if not d.is_dir():
                d.mkdir(parents=True, exist_ok=True)
                self._fsync_dir(d.parent)

    # -- ids and paths -------------------------------------------------------

    @staticmethod
    def new_id() -> str:
        h = secrets.token_hex(16)
        return f"{h[:2]}/{h}"

    @staticmethod
    def valid_id(file_id: str) -> bool:
        return bool(_ID_RE.match(file_id))

    def path(self, file_id: str) -> Path:
        """Absolute path of a stored file (delivery streams from it)."""
        if not self.valid_id(file_id):
            raise InvalidFileID(f"invalid message file id {file_id!r}")
        return self.root / file_id

    # -- writing -------------------------------------------------------------

    def _place_sync(self, tmp_path: Path) -> str:
        """fsync a finished temp file, rename it into place, fsync the directory."""
        fd = os.open(tmp_path, os.O_RDONLY)
        try:
            self._fsync(fd)
        finally:
            os.close(fd)
        return self._move_sync(tmp_path)

    def _move_sync(self, tmp_path: Path | str) -> str:
        """Rename an fsynced temp file into place and fsync the directory; returns the id.

        Path strings, not :class:`Path` objects: this runs for every message stored.
        """
        file_id = self.new_id()
        root = str(self.root)
        d = os.path.join(root, file_id[:2])
        dest = os.path.join(d, file_id[3:])
        if not os.path.isdir(d):
            os.makedirs(d, exist_ok=True)
            self._fsync_dir(root)
        try:
            os.rename(tmp_path, dest)
        except OSError as exc:
            if exc.errno != errno.EXDEV:  # temp file on another filesystem: copy
                raise
            self._copy_sync(tmp_path, dest)
            os.unlink(tmp_path)
        self._fsync_dir(d)
        return file_id

    def _copy_sync(self, src: Path | str, dest: Path | str) -> None:
        tmp = self.tmp_dir / f"copy-{secrets.token_hex(8)}"
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(1 << 20):
                fout.write(chunk)
            fout.flush()
            self._fsync(fout.fileno())
        os.rename(tmp, dest)

    def store_sync(self, data: bytes | Path) -> str:
        """Blocking form of :meth:`store` (for code already in a worker thread)."""
        if isinstance(data, bytes | bytearray | memoryview):
            tmp = os.path.join(str(self.tmp_dir), f"new-{secrets.token_hex(8)}")
            try:
                # Written and fsynced through one descriptor (no reopening to fsync).
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view):]
                    self._fsync(fd)
                finally:
                    os.close(fd)
                return self._move_sync(tmp)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
        return self._place_sync(Path(data))

    async def store(self, data: bytes | Path) -> str:
        """Store bytes, or take over (move) a finished temp file; returns the file id.

        Returns after the file and its directory entry are on disk.
        """
        return await BLOCKING.run_sync(self.store_sync, data)

    def new_temp(self) -> TempMessage:
        """A writer for streaming a large message (SMTP DATA) to disk in chunks."""
        return TempMessage(self)

    async def store_chunks(self, chunks: Iterable[bytes] | AsyncIterable[bytes]) -> str:
        """Store a message given as chunks without holding it all in memory."""
        async with self.new_temp() as tmp:
            if isinstance(chunks, AsyncIterable):
                async for chunk in chunks:
                    await tmp.write(chunk)
            else:
                for chunk in chunks:
                    await tmp.write(chunk)
            return await tmp.commit()

    # -- reading and removing ------------------------------------------------

    async def read(self, file_id: str) -> bytes:
        return await trio.to_thread.run_sync(self.path(file_id).read_bytes)

    async def size(self, file_id: str) -> int:
        """The stored file's size in bytes."""
        return await trio.to_thread.run_sync(lambda: self.path(file_id).stat().st_size)

    @asynccontextmanager
    async def local_copy(self, file_id: str) -> AsyncIterator[Path]:
        """A path to read the file from, valid inside the ``async with``.

        Here that is the stored file itself (no copy).
        """
        yield self.path(file_id)

    def remove_sync(self, file_id: str) -> bool:
        """Remove a file; False if it was already gone."""
        p = self.path(file_id)
        try:
            p.unlink()
        except FileNotFoundError:
            return False
        self._fsync_dir(p.parent)
        return True

    async def remove(self, file_id: str) -> bool:
        """Remove a file (only after the commit that dropped its last row)."""
        return await trio.to_thread.run_sync(self.remove_sync, file_id)

    def list_ids_sync(self) -> list[str]:
        """Every stored file id (skips temp files and anything not ours)."""
        ids: list[str] = []
        if not self.root.is_dir():
            return ids
        for d in self.root.iterdir():
            if len(d.name) != 2 or not d.is_dir():
                continue
            for f in d.iterdir():
                fid = f"{d.name}/{f.name}"
                if self.valid_id(fid) and f.name.startswith(d.name):
                    ids.append(fid)
        return sorted(ids)

    def removable_ids_sync(self) -> list[str]:
        """Ids the start-up check may remove when no row names them (here: all)."""
        return self.list_ids_sync()

    def clear_temp_sync(self) -> int:
        """Remove leftover temp files (from a crash mid-write); returns the count."""
        n = 0
        if self.tmp_dir.is_dir():
            for f in self.tmp_dir.iterdir():
                f.unlink(missing_ok=True)
                n += 1
        return n


class TempMessage:
    """A message being received: chunks go to a temp file, commit moves it into place.

    Writes are buffered and flushed in a worker thread, so the trio thread
    never blocks on disk. Use as ``async with files.new_temp() as t:``; a
    temp that was not committed is removed on exit.
    """

    def __init__(self, files: MessageFiles) -> None:
        self._files = files
        self.path = files.tmp_dir / f"stream-{secrets.token_hex(8)}"
        # Opened lazily in a worker thread: no disk IO on the trio thread.
        self._f: BinaryIO | None = None
        self._buf = bytearray()
        self.size = 0
        self._done = False

    async def write(self, chunk: bytes) -> None:
        if self._done:
            raise ValueError("temp message already committed or discarded")
        self._buf += chunk
        self.size += len(chunk)
        if len(self._buf) >= _TEMP_BUFFER:
            await self._flush()

    async def _flush(self) -> None:
        if self._buf:
            data = bytes(self._buf)
            self._buf.clear()
            await trio.to_thread.run_sync(self._write_all, data)

    def _open_sync(self) -> BinaryIO:
        if self._f is None:
            self._f = open(self.path, "wb")  # noqa: SIM115 - closed in commit/discard
        return self._f

    def _write_all(self, data: bytes) -> None:
        self._open_sync().write(data)

    def _close_sync(self) -> None:
        if self._f is not None:
            self._f.close()

    def _finish_sync(self) -> str:
        self._open_sync()
        self._close_sync()
        return self._files._place_sync(self.path)

    def _discard_sync(self) -> None:
        self._close_sync()
        self.path.unlink(missing_ok=True)

    async def commit(self) -> str:
        """fsync, rename into place, fsync the directory; returns the file id."""
        await self._flush()
        self._done = True
        try:
            return await trio.to_thread.run_sync(self._finish_sync)
        except BaseException:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._discard_sync)
            raise

    async def discard(self) -> None:
        """Drop an uncommitted temp file (safe to call twice, runs even when cancelled)."""
        if not self._done:
            self._done = True
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self._discard_sync)

    async def __aenter__(self) -> TempMessage:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.discard()
