"""The portable SQL surface: what store code and in-transaction hooks may use.

The store runs on SQLite (the default) or PostgreSQL. Code that touches the
database is written once, against the part of ``sqlite3``'s API that both
backends provide:

- ``conn.execute(sql, params)`` / ``conn.executemany(sql, seq)`` with ``?``
  placeholders, returning a cursor with ``fetchone()``, ``fetchall()``,
  iteration and ``rowcount``;
- rows that are tuples with access by column name too (``row["id"]``,
  ``row.keys()``, ``dict(row)``);
- ``conn.in_transaction``; ``SAVEPOINT``/``RELEASE``/``ROLLBACK TO``.

SQL must stay in the subset both engines accept: ``INSERT ... ON CONFLICT
(...) DO NOTHING / DO UPDATE SET col = excluded.col`` instead of ``INSERT OR
IGNORE/REPLACE``, ``COALESCE`` instead of ``IFNULL``, ``INSERT ... RETURNING
id`` instead of ``cursor.lastrowid`` (the cursor type has no ``lastrowid``,
so mypy finds a forgotten one), integer columns compared with integers
(``hold != 0``, never a bare ``WHERE hold``), no ``rowid``. ``instr`` exists
on both (the PostgreSQL store defines it).

On SQLite the connection *is* a ``sqlite3.Connection`` (no wrapper on the
hot path); on PostgreSQL it is :class:`core.store.pg.PgConnection`, which
translates placeholders and raises the error classes below.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Protocol, runtime_checkable


class Row(Protocol):
    """A result row: index access, name access, ``keys()``."""

    def __getitem__(self, key: int | str, /) -> Any: ...

    def keys(self) -> list[str]: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[Any]: ...


class Cursor(Protocol):
    """What a statement returns (no ``lastrowid``: use ``RETURNING``)."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@runtime_checkable
class Connection(Protocol):
    """The connection a store function or an in-transaction hook receives."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Cursor: ...

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Cursor: ...

    @property
    def in_transaction(self) -> bool: ...


class PgError(Exception):
    """A PostgreSQL error, raised by the PostgreSQL connection (cause: psycopg's)."""


class PgIntegrityError(PgError):
    """A PostgreSQL constraint violation (unique, foreign key, check, not null)."""


class DatabaseUnavailable(OSError):
    """The database server cannot be reached (start-up reports it in one line, like a busy port)."""


#: Catch these instead of ``sqlite3.Error`` / ``sqlite3.IntegrityError``.
DatabaseError: tuple[type[Exception], ...] = (sqlite3.Error, PgError)
IntegrityError: tuple[type[Exception], ...] = (sqlite3.IntegrityError, PgIntegrityError)


def dialect(conn: object) -> str:
    """``"sqlite"`` or ``"postgres"``: for the rare statement that differs."""
    return str(getattr(conn, "dialect", "sqlite"))


def upsert(table: str, columns: Sequence[str], key: Sequence[str]) -> str:
    """``INSERT ... ON CONFLICT (key) DO UPDATE`` of every other column (both engines).

    The portable form of ``INSERT OR REPLACE``: the row with that key is
    updated in place instead of being deleted and inserted again.
    """
    cols = ", ".join(columns)
    marks = ", ".join("?" for _ in columns)
    sets = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    action = f"DO UPDATE SET {sets}" if sets else "DO NOTHING"
    return f"INSERT INTO {table} ({cols}) VALUES ({marks}) ON CONFLICT ({', '.join(key)}) {action}"
