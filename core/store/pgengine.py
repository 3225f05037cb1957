"""How the store talks to PostgreSQL (the counterpart of ``SqliteEngine``).

The writer is one autocommit connection used only by the store's writer
thread, which issues BEGIN, a SAVEPOINT per write and one COMMIT per batch,
as on SQLite (``synchronous_commit`` stays on: COMMIT returns once the WAL
is flushed, so a caller still hears "stored" only after durable storage).
Reads borrow a connection from a ``psycopg_pool.ConnectionPool`` and run in
a ``REPEATABLE READ READ ONLY`` transaction: one consistent snapshot, like a
SQLite read transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core.store.pg import PgConnection, configure, connect
from core.store.sql import PgError

if TYPE_CHECKING:  # pragma: no cover
    from psycopg_pool import ConnectionPool

    from core.store.db import Store
    from core.store.files import MessageFiles

T = TypeVar("T")
log = logging.getLogger("moxtrio.store")

#: Pooled connections beyond the readers, for message bodies.
FILE_CONNECTIONS = 4


class PostgresEngine:
    dialect = "postgres"

    def __init__(self, url: str) -> None:
        self.url = url
        self.description = redact_url(url)
        self._pool: ConnectionPool[Any] | None = None

    def connect_writer(self) -> PgConnection:
        conn = connect(self.url)
        collate = conn.execute(
            "SELECT datcollate FROM pg_database WHERE datname = current_database()"
        ).fetchone()[0]
        if collate not in ("C", "POSIX", "C.UTF-8", "C.utf8"):
            # Listings ordered by text (accounts, suppressions) then differ from
            # SQLite's byte order, which is also mox's.
            log.warning(
                "database collation is %s: text sorts differently than on SQLite;"
                " create the database with LC_COLLATE 'C' for byte order", collate,
            )
        return conn

    def ensure_writer(self, conn: PgConnection) -> PgConnection:
        """The writer connection, replaced by a new one when the old one broke."""
        if not (conn.raw.closed or conn.raw.broken):
            return conn
        log.warning("store writer: connection to PostgreSQL lost, reconnecting")
        conn.close()
        return connect(self.url)

    def begin_write(self, conn: PgConnection) -> None:
        conn.execute("BEGIN")

    def close_writer(self, conn: PgConnection) -> None:
        conn.close()

    def make_files(self, root: Path) -> MessageFiles:
        from core.store.pgfiles import PgMessageFiles

        return PgMessageFiles(root, self)

    def connection(self) -> AbstractContextManager[Any]:
        """A pooled autocommit connection (reads, message bodies)."""
        assert self._pool is not None, "store not open"
        return self._pool.connection()

    def open_readers(self, size: int) -> None:
        from psycopg_pool import ConnectionPool

        self._pool = ConnectionPool(
            self.url,
            min_size=1,
            # Readers plus message-body transfers (stores, copies for delivery).
            max_size=max(1, size) + FILE_CONNECTIONS,
            kwargs={"autocommit": True},
            configure=configure,
            name="moxtrio-store-read",
            open=True,
        )

    def read_sync(self, store: Store, fn: Callable[[Any], T]) -> T:
        assert self._pool is not None
        # Pooled connections may have died while idle (database restart,
        # failover): the pool drops each one found broken, and the read, which
        # has not started yet, takes the next (a new one at the latest).
        attempts = self._pool.max_size + 1
        for attempt in range(1, attempts + 1):
            with self._pool.connection() as raw:
                conn = PgConnection(raw)
                try:
                    conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                except PgError:
                    if attempt < attempts and raw.broken:
                        continue
                    raise
                try:
                    return fn(conn)
                finally:
                    if conn.in_transaction and not raw.broken:
                        conn.execute("ROLLBACK")
        raise AssertionError("unreachable")

    def close_readers(self, store: Store) -> None:
        if self._pool is not None:
            self._pool.close()


def redact_url(url: str) -> str:
    """The URL without its password, for logs."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "postgresql"
    if parts.password:
        host = parts.hostname or ""
        netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)
