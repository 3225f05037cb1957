"""PostgreSQL for the store: a connection with sqlite3's surface, and DDL translation.

The store's code and the plugins' in-transaction hooks are written against
:mod:`core.store.sql` (``?`` placeholders, rows with index and name access).
:class:`PgConnection` gives a psycopg 3 connection that surface:

- ``?`` becomes ``%s`` (and a literal ``%`` becomes ``%%``) outside quoted
  strings, identifiers and comments; translations are cached per statement;
- rows are :class:`PgRow` (a tuple that is also indexable by column name);
- Python ``bool`` parameters are sent as integers (the schema keeps SQLite's
  0/1 INTEGER columns), and ``numeric`` results (``SUM`` of BIGINT) come back
  as ``int``/``float`` as SQLite returns them;
- psycopg errors are raised as :class:`core.store.sql.PgError` /
  :class:`core.store.sql.PgIntegrityError` (with psycopg's as ``__cause__``).

Connections run in autocommit mode and the store issues BEGIN/COMMIT itself,
exactly as on SQLite. Server-side prepared statements: psycopg prepares a
statement after it ran ``prepare_threshold`` times on a connection (we keep
psycopg's default, 5), so the hot statements of the Send path run prepared.

psycopg is imported only when a PostgreSQL store is opened: a SQLite server
does not pay for it at start-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from core.store.sql import DatabaseUnavailable, PgError, PgIntegrityError

if TYPE_CHECKING:  # pragma: no cover
    import psycopg

#: Statements prepared server-side after this many executions on a connection.
PREPARE_THRESHOLD = 5

#: Functions SQLite has built in that portable SQL may use; created (once,
#: idempotently) in every PostgreSQL store database.
COMPAT_FUNCTIONS = (
    "CREATE OR REPLACE FUNCTION instr(haystack text, needle text) RETURNS integer"
    " LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS 'SELECT strpos(haystack, needle)'",
)

# A quoted string, a quoted identifier, a comment, or one character we care about.
_TOKENS = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*|/\*.*?\*/|[?%]", re.S)
_translated: dict[str, str] = {}


def translate_placeholders(sql: str) -> str:
    """``?`` -> ``%s`` and ``%`` -> ``%%`` outside literals (for a query with parameters)."""
    out = _translated.get(sql)
    if out is not None:
        return out

    def repl(m: re.Match[str]) -> str:
        tok = m.group(0)
        if tok == "?":
            return "%s"
        if tok == "%":
            return "%%"
        return tok.replace("%", "%%")

    out = _TOKENS.sub(repl, sql)
    if len(_translated) < 4096:
        _translated[sql] = out
    return out


class PgRow(tuple[Any, ...]):
    """A row with ``sqlite3.Row``'s access: by index, by (case-insensitive) name, ``keys()``."""

    _index: dict[str, int]

    def __new__(cls, values: Sequence[Any], index: dict[str, int]) -> PgRow:
        row = super().__new__(cls, values)
        row._index = index
        return row

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            try:
                i = self._index[key]
            except KeyError:
                i = self._index.get(key.lower(), -1)
                if i < 0:
                    raise IndexError(f"no such column: {key}") from None
            return tuple.__getitem__(self, i)
        return tuple.__getitem__(self, key)

    def keys(self) -> list[str]:
        return list(self._index)


def _row_factory(cursor: Any) -> Any:
    desc = cursor.description
    if desc is None:
        return tuple
    index: dict[str, int] = {}
    for i, col in enumerate(desc):
        index.setdefault(col.name, i)

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(values, index)

    return make


def _translate_error(exc: Exception) -> PgError:
    import psycopg

    cls = PgIntegrityError if isinstance(exc, psycopg.errors.IntegrityError) else PgError
    err = cls(str(exc).strip())
    err.sqlstate = getattr(exc, "sqlstate", None)  # type: ignore[attr-defined]
    return err


class PgConnection:
    """A psycopg connection with the :class:`core.store.sql.Connection` surface."""

    dialect = "postgres"

    def __init__(self, raw: psycopg.Connection[Any]) -> None:
        self.raw = raw

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        import psycopg

        cur = self.raw.cursor(row_factory=_row_factory)
        try:
            if parameters:
                cur.execute(translate_placeholders(sql), parameters)  # type: ignore[arg-type]
            else:
                cur.execute(sql)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise _translate_error(exc) from exc
        return cur

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> Any:
        import psycopg

        cur = self.raw.cursor(row_factory=_row_factory)
        try:
            cur.executemany(translate_placeholders(sql), seq_of_parameters)  # type: ignore[arg-type]
        except psycopg.Error as exc:
            raise _translate_error(exc) from exc
        return cur

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return self.raw.info.transaction_status != TransactionStatus.IDLE

    def close(self) -> None:
        self.raw.close()


def configure(raw: psycopg.Connection[Any]) -> None:
    """Adapters every store connection gets (also used as the pool's ``configure``)."""
    from psycopg.adapt import Dumper, Loader
    from psycopg.postgres import types

    class BoolAsInt(Dumper):
        oid = types["int8"].oid

        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    class NumericAsNumber(Loader):
        def load(self, data: Any) -> Any:
            s = bytes(data).decode()
            try:
                return int(s)
            except ValueError:
                return float(s)

    raw.adapters.register_dumper(bool, BoolAsInt)
    raw.adapters.register_loader("numeric", NumericAsNumber)
    raw.prepare_threshold = PREPARE_THRESHOLD


def connect(url: str) -> PgConnection:
    """A new autocommit connection (the store's writer, migrations, tools)."""
    import psycopg

    try:
        raw = psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as exc:
        from core.store.pgengine import redact_url

        raise DatabaseUnavailable(f"cannot connect to PostgreSQL at {redact_url(url)}: {str(exc).strip()}") from exc
    except psycopg.Error as exc:
        raise _translate_error(exc) from exc
    configure(raw)
    return PgConnection(raw)


# -- DDL ----------------------------------------------------------------------

_LITERAL_OR_COMMENT = re.compile(r"'(?:[^']|'')*'|--[^\n]*")
_DDL_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # IDs are never reused: a sequence never hands out a number twice.
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY\s+AUTOINCREMENT\b", re.I),
     "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bWITHOUT\s+ROWID\b", re.I), ""),
    # Column names SQLite takes bare but PostgreSQL reserves.
    (re.compile(r'(?<!")\bauthorization\b(?!")', re.I), '"authorization"'),
)
_HEX_BLOB = re.compile(r"\b[xX]'([0-9a-fA-F]*)'")


def translate_ddl(stmt: str) -> str:
    """One SQLite DDL/DML statement of a migration, in PostgreSQL's dialect.

    Covers the types the schema uses (INTEGER -> BIGINT, BLOB -> BYTEA, REAL
    -> DOUBLE PRECISION, ``X'..'`` literals, AUTOINCREMENT -> identity).
    Anything else (triggers, PRAGMA) needs the migration's own ``postgres``
    text.
    """
    stmt = _HEX_BLOB.sub(lambda m: f"'\\x{m.group(1)}'::bytea", stmt)
    parts: list[str] = []
    pos = 0
    for m in _LITERAL_OR_COMMENT.finditer(stmt):
        parts.append(_ddl_code(stmt[pos:m.start()]))
        if not m.group(0).startswith("--"):  # comments are dropped (they may hold quotes)
            parts.append(m.group(0))
        pos = m.end()
    parts.append(_ddl_code(stmt[pos:]))
    return "".join(parts)


def _ddl_code(code: str) -> str:
    for pattern, repl in _DDL_RULES:
        code = pattern.sub(repl, code)
    return code
