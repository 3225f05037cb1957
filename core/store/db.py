"""The store: one SQLite database, one writer thread with group commit, pooled readers.

Why one writer thread: SQLite allows one writer at a time, and with
``synchronous=FULL`` every COMMIT costs an fsync (a few ms). Giving each
SMTP session its own commit caps the server at a few thousand commits per
second and makes writers fight over the lock. Instead every write is a
function queued to one thread, which takes all waiting functions, runs each
in its own SAVEPOINT inside one transaction, COMMITs once, and only then
wakes the callers: many writes share one fsync, and each caller still
returns only after its rows are durable — the point at which the SMTP
server may say 250 and the webapi 200.

Reads never wait for the writer: WAL lets read-only connections (a small
pool) see the last committed state while the writer works. Reads run on a
small pool of long-lived reader threads (:mod:`core.workers`: cheaper per
read on the trio thread than ``trio.to_thread``).

The same contract holds on PostgreSQL (:mod:`core.store.pgengine`): one
writer connection in its own thread with the same group commit and
savepoints, and reads on pooled connections in read-only snapshot
transactions. Which database a store uses is :class:`DatabaseSettings`.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import outcome
import trio

from core.store.files import MessageFiles
from core.store.migrations import Migration, apply_migrations
from core.store.schema import CORE_FILE_REFERENCES, CORE_MIGRATIONS
from core.store.settings import DatabaseSettings
from core.store.sql import Connection, DatabaseError
from core.workers import WorkerPool

log = logging.getLogger("moxtrio.store")

T = TypeVar("T")

DB_NAME = "moxtrio.db"
#: Upper bound on writes per transaction, so one huge burst does not hold
#: every caller until it is all done.
MAX_BATCH = 1000
_SAVEPOINT = "moxtrio_write"


class StoreClosed(Exception):
    """The store was closed; no more writes are accepted."""


class WriteAborted(Exception):
    """A write ran fine but its transaction did not commit (a later failure in the batch)."""


@dataclass
class StoreStats:
    """Counters for tests and benchmarks (updated by the writer thread)."""

    writes: int = 0
    commits: int = 0
    failed_writes: int = 0
    max_batch: int = 0


@dataclass
class _Request:
    fn: Callable[[Any], Any]
    task: trio.lowlevel.Task
    result: outcome.Outcome[Any] | None = field(default=None)


def _connect(path: Path, *, readonly: bool) -> sqlite3.Connection:
    if readonly:
        uri = f"file:{urllib.parse.quote(str(path))}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
    else:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode.lower() != "wal":
            conn.close()
            raise RuntimeError(f"cannot switch {path} to WAL mode (got {mode!r})")
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


class SqliteEngine:
    """How the store talks to SQLite: ``<data_dir>/moxtrio.db`` in WAL mode."""

    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)

    def connect_writer(self) -> sqlite3.Connection:
        return _connect(self.path, readonly=False)

    def ensure_writer(self, conn: sqlite3.Connection) -> sqlite3.Connection:
        return conn  # a file does not go away

    def begin_write(self, conn: sqlite3.Connection) -> None:
        conn.execute("BEGIN IMMEDIATE")

    def close_writer(self, conn: sqlite3.Connection) -> None:
        try:
            conn.execute("PRAGMA optimize")
        except sqlite3.Error:
            pass
        conn.close()

    def make_files(self, root: Path) -> MessageFiles:
        return MessageFiles(root)

    def open_readers(self, size: int) -> None:
        """SQLite readers are opened on demand by :meth:`read_sync`."""

    def read_sync(self, store: Store, fn: Callable[[Any], T]) -> T:
        with store._readers_lock:
            conn = store._readers.pop() if store._readers else None
        if conn is None:
            conn = _connect(self.path, readonly=True)
        reusable = False
        try:
            conn.execute("BEGIN")
            try:
                result = fn(conn)
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            reusable = True
            return result
        finally:
            with store._readers_lock:
                if reusable and not store._closed:
                    store._readers.append(conn)
                    conn = None
            if conn is not None:
                conn.close()  # broken, or the store closed meanwhile

    def close_readers(self, store: Store) -> None:
        with store._readers_lock:
            readers, store._readers = store._readers, []
        for r in readers:
            r.close()


class Store:
    """The durable store. Open with :meth:`open`, close with :meth:`aclose`.

    ``write(fn)`` and ``read(fn)`` take plain synchronous functions of a
    :class:`core.store.sql.Connection` (a ``sqlite3.Connection`` on SQLite,
    rows as ``sqlite3.Row``; the portable wrapper on PostgreSQL). Write
    functions must not BEGIN/COMMIT/ROLLBACK themselves; they may use
    SAVEPOINTs. They run in the writer thread, so they must not block on
    the network.
    """

    def __init__(self, data_dir: Path, engine: Any, conn: Any, read_pool_size: int) -> None:
        self.data_dir = data_dir
        self.db_path = data_dir / DB_NAME
        self.engine = engine
        #: ``"sqlite"`` or ``"postgres"``.
        self.dialect: str = engine.dialect
        self.files: MessageFiles = engine.make_files(data_dir / "msg")
        self.stats = StoreStats()
        self.file_references: list[tuple[str, str]] = list(CORE_FILE_REFERENCES)
        self._conn = conn
        self._token = trio.lowlevel.current_trio_token()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._pending: deque[_Request] = deque()
        self._closing = False
        self._thread = threading.Thread(
            target=self._writer_main, name="moxtrio-store-writer", daemon=True
        )
        self._readers: list[Any] = []
        self._readers_lock = threading.Lock()
        self._reader_pool = WorkerPool("moxtrio-store-reader", read_pool_size)
        self._closed = False

    # -- lifecycle -------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        data_dir: Path | str,
        migrations: Iterable[Migration] = (),
        *,
        read_pool_size: int = 4,
        database: DatabaseSettings | None = None,
    ) -> Store:
        """Open (creating if needed) the database and apply migrations.

        Without ``database`` (or with backend ``sqlite``) that is
        ``<data_dir>/moxtrio.db``; with backend ``postgres`` the database at
        its URL (``data_dir`` still holds temp files). ``migrations`` are the
        plugins' (gathered through the ``moxtrio_migrations`` hook); the
        core's own are always applied first.
        """
        data_dir = Path(data_dir)
        all_migrations = [*CORE_MIGRATIONS, *migrations]
        engine: Any
        if database is not None and database.backend == "postgres":
            from core.store.pgengine import PostgresEngine
            from core.store.pgfiles import MIGRATIONS as PG_FILES_MIGRATIONS

            engine = PostgresEngine(database.resolved_url())
            all_migrations[len(CORE_MIGRATIONS):len(CORE_MIGRATIONS)] = PG_FILES_MIGRATIONS
        else:
            engine = SqliteEngine(data_dir / DB_NAME)

        def setup() -> Any:
            data_dir.mkdir(parents=True, exist_ok=True)
            MessageFiles(data_dir / "msg").setup_sync()
            conn = engine.connect_writer()
            try:
                apply_migrations(conn, all_migrations)
                engine.open_readers(read_pool_size)
            except BaseException:
                conn.close()
                raise
            return conn

        conn = await trio.to_thread.run_sync(setup)
        log.info("store: %s %s", engine.dialect, engine.description)
        store = cls(data_dir, engine, conn, read_pool_size)
        store._thread.start()
        return store

    async def aclose(self) -> None:
        """Finish every queued write, then close all connections."""
        if self._closed:
            return
        self._closed = True
        with self._lock:
            self._closing = True
            self._wake.notify()
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(self._thread.join)
            # Queued reads finish (each returns its connection or closes it:
            # closed flag), then the idle reader connections are closed.
            await self._reader_pool.aclose()
            await trio.to_thread.run_sync(self.engine.close_readers, self)

    async def __aenter__(self) -> Store:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- writes ----------------------------------------------------------------

    async def write(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` in the next group transaction; return after COMMIT.

        An exception from ``fn`` rolls back only ``fn``'s own savepoint and
        is re-raised here. Once queued the write cannot be cancelled (like
        ``trio.to_thread.run_sync``): the caller always learns whether its
        rows committed, so it never answers a client without knowing.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        req = _Request(fn=fn, task=trio.lowlevel.current_task())
        with self._lock:
            if self._closing:
                raise StoreClosed("store is closed")
            self._pending.append(req)
            if len(self._pending) == 1:
                self._wake.notify()

        def abort(_: Any) -> trio.lowlevel.Abort:
            return trio.lowlevel.Abort.FAILED

        result: T = await trio.lowlevel.wait_task_rescheduled(abort)
        return result

    def _writer_main(self) -> None:
        conn = self._conn
        try:
            while True:
                with self._lock:
                    while not self._pending and not self._closing:
                        self._wake.wait()
                    if not self._pending:
                        return  # closing and drained
                    n = min(len(self._pending), MAX_BATCH)
                    batch = [self._pending.popleft() for _ in range(n)]
                try:
                    # A lost database connection fails one batch (its callers
                    # hear an error); the next batch reconnects.
                    conn = self._conn = self.engine.ensure_writer(conn)
                    self._run_batch(conn, batch)
                except BaseException as exc:  # noqa: BLE001 - never leave a caller hanging
                    log.exception("store writer: batch failed")
                    if conn.in_transaction:
                        try:
                            conn.execute("ROLLBACK")
                        except DatabaseError:
                            pass
                    lost = WriteAborted(f"store writer failed: {exc}")
                    for req in batch:
                        if not isinstance(req.result, outcome.Error):
                            req.result = outcome.Error(lost)
                try:
                    self._token.run_sync_soon(_wake_all, batch)
                except trio.RunFinishedError:
                    log.error("store writer: trio run finished with %d writes pending", len(batch))
        finally:
            self.engine.close_writer(conn)

    def _run_batch(self, conn: Any, batch: list[_Request]) -> None:
        """One transaction for the batch; each request gets its own outcome."""
        try:
            self.engine.begin_write(conn)
        except BaseException as exc:  # noqa: BLE001 - every caller must hear about it
            for req in batch:
                req.result = outcome.Error(exc)
            self.stats.failed_writes += len(batch)
            return
        ok: list[_Request] = []
        for req in batch:
            req.result = self._run_one(conn, req)
            if isinstance(req.result, outcome.Value):
                ok.append(req)
            if not conn.in_transaction:
                # SQLite rolled back the whole transaction (disk full, I/O
                # error…) or fn ended it: the earlier writes are gone too.
                lost = WriteAborted(
                    "transaction ended early by another write in its batch;"
                    " this write may not have committed"
                )
                for prev in ok:
                    prev.result = outcome.Error(lost)
                ok = []
                self.engine.begin_write(conn)
        try:
            conn.execute("COMMIT")
        except BaseException as exc:  # noqa: BLE001 - nobody's rows are durable
            if conn.in_transaction:
                try:
                    conn.execute("ROLLBACK")
                except DatabaseError:
                    pass
            lost = WriteAborted(f"commit failed: {exc}")
            lost.__cause__ = exc
            for req in ok:
                req.result = outcome.Error(lost)
            ok = []
        else:
            self.stats.commits += 1
        self.stats.writes += len(ok)
        self.stats.failed_writes += len(batch) - len(ok)
        self.stats.max_batch = max(self.stats.max_batch, len(batch))

    @staticmethod
    def _run_one(conn: Any, req: _Request) -> outcome.Outcome[Any]:
        conn.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            value = req.fn(conn)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            if conn.in_transaction:
                try:
                    conn.execute(f"ROLLBACK TO {_SAVEPOINT}")
                    conn.execute(f"RELEASE {_SAVEPOINT}")
                except DatabaseError as rb_exc:
                    log.error("rolling back a failed write: %s", rb_exc)
                    conn.execute("ROLLBACK")
            return outcome.Error(exc)
        if not conn.in_transaction:
            return outcome.Error(
                RuntimeError("write function ended the transaction (COMMIT/ROLLBACK inside fn)")
            )
        conn.execute(f"RELEASE {_SAVEPOINT}")
        return outcome.Value(value)

    # -- reads -----------------------------------------------------------------

    async def read(self, fn: Callable[[Any], T]) -> T:
        """Run ``fn(conn)`` on a read-only connection in a worker thread.

        ``fn`` sees one consistent snapshot of committed data (it runs in a
        read transaction).
        """
        if self._closed:
            raise StoreClosed("store is closed")
        return await self._reader_pool.run_sync(self._read_sync, fn)

    def _read_sync(self, fn: Callable[[Any], T]) -> T:
        result: T = self.engine.read_sync(self, fn)
        return result

    # -- files -----------------------------------------------------------------

    def add_file_reference(self, table: str, column: str) -> None:
        """Declare a plugin table column holding message file ids (kept by check_files)."""
        if (table, column) not in self.file_references:
            self.file_references.append((table, column))

    def referenced_file_ids(self, conn: Connection) -> set[str]:
        ids: set[str] = set()
        for table, column in self.file_references:
            q = f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL'
            ids.update(r[0] for r in conn.execute(q) if r[0])
        return ids

    def is_file_referenced(self, conn: Connection, file_id: str) -> bool:
        for table, column in self.file_references:
            q = f'SELECT 1 FROM "{table}" WHERE "{column}" = ? LIMIT 1'
            if conn.execute(q, (file_id,)).fetchone() is not None:
                return True
        return False

    async def remove_unreferenced(self, file_ids: Iterable[str]) -> list[str]:
        """After a commit dropped rows: remove those files no row names any more.

        Runs shielded: this is bookkeeping that must follow the commit even
        if the caller is being cancelled. Returns the ids removed.
        """
        wanted = [f for f in dict.fromkeys(file_ids) if f]
        if not wanted:
            return []
        with trio.CancelScope(shield=True):
            orphans = await self.read(
                lambda conn: [f for f in wanted if not self.is_file_referenced(conn, f)]
            )
            for f in orphans:
                await self.files.remove(f)
        return orphans

    async def check_files(self) -> list[str]:
        """Start-up consistency check for the durability order of :mod:`core.store.files`.

        Removes message files no row references (written, but the commit
        never happened) and leftover temp files; returns, and logs, the file
        ids that rows reference but that are missing on disk. Call it before
        accepting mail: a file stored but not yet committed would look
        orphaned.
        """
        referenced = await self.read(self.referenced_file_ids)

        def scan() -> tuple[list[str], list[str], int]:
            on_disk = set(self.files.list_ids_sync())
            orphans = sorted(set(self.files.removable_ids_sync()) - referenced)
            for f in orphans:
                self.files.remove_sync(f)
            temps = self.files.clear_temp_sync()
            return orphans, sorted(referenced - on_disk), temps

        orphans, missing, temps = await trio.to_thread.run_sync(scan)
        if orphans or temps:
            log.info("removed %d message files without rows and %d temp files", len(orphans), temps)
        for f in missing:
            log.error("message file %s is referenced by a row but missing on disk", f)
        return missing


def _wake_all(batch: list[_Request]) -> None:
    """Runs on the trio thread: hand every caller of a batch its outcome."""
    for req in batch:
        assert req.result is not None
        trio.lowlevel.reschedule(req.task, req.result)
