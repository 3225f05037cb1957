"""``moxtrio db copy``: a SQLite store into an empty PostgreSQL database.

For users who outgrow one node: stop the server, copy, point
``plugins/store.yaml`` at PostgreSQL, start as many nodes as wanted.

1. The SQLite store is opened as a server start would (pending migrations
   applied), and the target gets the same schema through the store's own
   migrations (so the PostgreSQL-only tables, such as the message bodies',
   exist too). The schema versions of both must then agree.
2. The target must hold no rows (a schema alone, from ``db migrate`` or an
   earlier failed copy, is fine): copying never merges into live data.
3. In one PostgreSQL transaction, every table of the SQLite store is
   streamed with ``COPY ... FROM STDIN`` (rows never all in memory), parent
   tables before the tables whose foreign keys point at them; then every
   identity sequence continues above the highest ID ever handed out (SQLite's
   AUTOINCREMENT counter, which a deleted row does not lower: queue IDs are
   never reused); then the message bodies the rows reference are streamed
   from disk into ``message_files`` in chunks. A failure rolls it all back.
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import trio

from core.store.migrations import Migration

#: Bytes per body row (as the PostgreSQL store writes them).
CHUNK = 512 * 1024


class CopyError(Exception):
    """The copy cannot be made (the message says why); nothing was written."""


def _plugin_migrations(migrations: list[Migration]) -> list[Migration]:
    from core.store.schema import CORE_MIGRATIONS

    return [m for m in migrations if m not in CORE_MIGRATIONS]


def _open_and_close(data_dir: Path, migrations: list[Migration], url: str = "") -> None:
    """Open a store (applying migrations) and close it again."""
    from core.store import Store
    from core.store.settings import DatabaseSettings

    async def run() -> None:
        database = DatabaseSettings(backend="postgres", url=url) if url else None
        store = await Store.open(data_dir, _plugin_migrations(migrations), database=database)
        await store.aclose()

    trio.run(run)


def _pg_tables(conn: Any) -> list[str]:
    rows = conn.execute(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
    ).fetchall()
    return sorted(str(r[0]) for r in rows)


def _check_empty(conn: Any) -> None:
    from psycopg import sql

    for t in _pg_tables(conn):
        if t == "schema_versions":
            continue
        q = sql.SQL("SELECT 1 FROM {} LIMIT 1").format(sql.Identifier(t))
        if conn.execute(q).fetchone() is not None:
            raise CopyError(f"target database is not empty (table {t} has rows); copy only into an empty database")


def _versions_sqlite(src: sqlite3.Connection) -> dict[str, int]:
    return {str(o): int(v) for o, v in src.execute("SELECT owner, MAX(version) FROM schema_versions GROUP BY owner")}


def _versions_pg(conn: Any) -> dict[str, int]:
    rows = conn.execute("SELECT owner, MAX(version) FROM schema_versions GROUP BY owner").fetchall()
    return {str(o): int(v) for o, v in rows}


def _source_tables(src: sqlite3.Connection) -> list[str]:
    """Tables in foreign-key order (a table after the tables it references)."""
    names = [
        str(r[0])
        for r in src.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            " AND name != 'schema_versions' ORDER BY name"
        )
    ]
    deps = {n: {str(r[2]) for r in src.execute(f'PRAGMA foreign_key_list("{n}")')} - {n} for n in names}
    ordered: list[str] = []
    while len(ordered) < len(names):
        ready = [n for n in names if n not in ordered and deps[n] <= set(ordered)]
        if not ready:
            raise CopyError(f"circular foreign keys among {sorted(set(names) - set(ordered))}")
        ordered += ready
    return ordered


def _columns(src: sqlite3.Connection, table: str) -> list[str]:
    return [str(r[1]) for r in src.execute(f'PRAGMA table_info("{table}")')]


def _pg_columns(conn: Any, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(r[0]) for r in rows}


def _copy_table(src: sqlite3.Connection, conn: Any, table: str, cols: list[str]) -> int:
    from psycopg import sql

    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(table), sql.SQL(", ").join(sql.Identifier(c) for c in cols)
    )
    select = f'SELECT {", ".join(chr(34) + c + chr(34) for c in cols)} FROM "{table}"'
    n = 0
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        for row in src.execute(select):
            copy.write_row(tuple(bytes(v) if isinstance(v, memoryview) else v for v in row))
            n += 1
    return n


def _fix_sequences(src: sqlite3.Connection, conn: Any, tables: list[str]) -> None:
    """Identity columns continue above every ID SQLite ever handed out."""
    counters: dict[str, int] = {}
    try:
        counters = {str(n): int(s) for n, s in src.execute("SELECT name, seq FROM sqlite_sequence")}
    except sqlite3.Error:
        pass  # no AUTOINCREMENT table in this store
    for table in tables:
        if "id" not in _pg_columns(conn, table):
            continue
        row = conn.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()
        if row is None or row[0] is None:
            continue
        from psycopg import sql

        top = conn.execute(sql.SQL("SELECT MAX(id) FROM {}").format(sql.Identifier(table))).fetchone()[0]
        high = max(int(top or 0), counters.get(table, 0))
        if high > 0:
            conn.execute("SELECT setval(%s, %s, true)", (row[0], high))


def _referenced_files(src: sqlite3.Connection) -> list[str]:
    from core.store.schema import CORE_FILE_REFERENCES

    ids: set[str] = set()
    for table, column in CORE_FILE_REFERENCES:
        ids.update(str(r[0]) for r in src.execute(f'SELECT DISTINCT "{column}" FROM "{table}" WHERE "{column}" IS NOT NULL') if r[0])
    return sorted(ids)


def _chunks(path: Path) -> Iterator[bytes]:
    with path.open("rb") as f:
        first = True
        while True:
            data = f.read(CHUNK)
            if not data and not first:
                return
            first = False
            yield data
            if len(data) < CHUNK:
                return


def _copy_bodies(data_dir: Path, conn: Any, file_ids: list[str]) -> tuple[int, int]:
    from core.store.files import MessageFiles

    files = MessageFiles(data_dir / "msg")
    created = time.time_ns() // 1000
    n = size = 0
    with conn.cursor() as cur, cur.copy("COPY message_files (file_id, seq, data, created) FROM STDIN") as copy:
        for fid in file_ids:
            path = files.path(fid)
            if not path.exists():
                raise CopyError(f"message file {fid} is referenced by a row but missing on disk ({path})")
            for seq, data in enumerate(_chunks(path)):
                copy.write_row((fid, seq, data, created))
                size += len(data)
            n += 1
    return n, size


def copy_store(data_dir: Path, url: str, migrations: list[Migration], log: IO[str] | None = None) -> str:
    """Copy the SQLite store in ``data_dir`` into the empty database at ``url``; a report."""
    import psycopg

    from core.store.db import DB_NAME

    db_path = data_dir / DB_NAME
    if not db_path.exists():
        raise CopyError(f"no SQLite store at {db_path}")
    try:
        with psycopg.connect(url, autocommit=True) as check:
            _check_empty(check)
    except psycopg.Error as exc:
        raise CopyError(f"target database: {exc}") from exc
    _open_and_close(data_dir, migrations)
    with tempfile.TemporaryDirectory(prefix="moxtrio-copy-") as tmp:
        _open_and_close(Path(tmp), migrations, url)
    src = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    lines: list[str] = []
    try:
        with psycopg.connect(url) as conn:  # one transaction, committed at the end of the block
            _check_empty(conn)
            sv, tv = _versions_sqlite(src), _versions_pg(conn)
            differ = sorted(o for o in sv if sv[o] != tv.get(o))
            if differ:
                raise CopyError(
                    "schema versions differ between source and target for "
                    + ", ".join(f"{o} ({sv[o]} vs {tv.get(o, 0)})" for o in differ)
                )
            tables = _source_tables(src)
            target_tables = set(_pg_tables(conn))
            for table in tables:
                if table not in target_tables:
                    raise CopyError(f"table {table} of the SQLite store has no counterpart in the target")
                cols = _columns(src, table)
                missing = [c for c in cols if c not in _pg_columns(conn, table)]
                if missing:
                    raise CopyError(f"table {table}: column {missing[0]} missing in the target")
                n = _copy_table(src, conn, table, cols)
                lines.append(f"copied {n} rows of {table}")
                if log is not None:
                    log.write(lines[-1] + "\n")
                    log.flush()
            _fix_sequences(src, conn, tables)
            files, size = _copy_bodies(data_dir, conn, _referenced_files(src))
            lines.append(f"copied {files} message bodies ({size} bytes)")
    except psycopg.Error as exc:
        raise CopyError(f"copying into the target failed, nothing kept: {exc}") from exc
    finally:
        src.close()
    return lines[-1] + "\ndone: point plugins/store.yaml at the new database and start the nodes\n"
