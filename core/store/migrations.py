"""Schema versions per owner: the core and each plugin evolve their own tables.

Every owner (``core``, or a plugin's name) numbers its migrations 1, 2, 3…
The store applies, in order, those above the owner's recorded version, each
in its own transaction together with the row that records it, so a crash
mid-upgrade leaves either the old or the new version, never half of one.
Restarting applies nothing twice.
"""

from __future__ import annotations

import hashlib
import logging
import re
import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from core.store.models import to_db_time, utcnow
from core.store.sql import Connection, dialect

log = logging.getLogger("moxtrio.store.migrations")


class MigrationError(Exception):
    """A set of migrations is inconsistent or one failed to apply."""


@dataclass(frozen=True)
class Migration:
    """One schema step of one owner.

    ``sql`` may hold several statements. It must not contain BEGIN/COMMIT:
    the store wraps it in a transaction. ``earlier_checksums`` are checksums
    that databases record for this migration from before its comments were
    edited, under the first rule (sha256 of the whole text). On PostgreSQL
    the statements of ``sql`` are translated
    (:func:`core.store.pg.translate_ddl`: types, AUTOINCREMENT); where that
    is not enough (triggers, SQLite-only functions) ``postgres`` holds the
    PostgreSQL text, used there instead. The checksum is of ``sql`` on both,
    so a database copied between backends keeps its recorded versions.
    """

    owner: str
    version: int
    sql: str
    earlier_checksums: tuple[str, ...] = ()
    postgres: str | None = None

    def sql_for(self, dialect: str) -> str:
        if dialect == "postgres" and self.postgres is not None:
            return self.postgres
        return self.sql

    @property
    def checksum(self) -> str:
        """sha256 of the statements alone: comments and layout may be edited freely."""
        return hashlib.sha256(statements_only(self.sql).encode()).hexdigest()

    def recorded_as(self, checksum: str) -> bool:
        """Whether a database recorded ``checksum`` for this very migration.

        Today's rule, or the first rule (the whole text, comments included)
        that databases created before it still hold.
        """
        first_rule = hashlib.sha256(self.sql.encode()).hexdigest()
        return checksum in (self.checksum, first_rule, *self.earlier_checksums)


# Quoted strings and names are kept as they are; comments and whitespace between them go.
_LITERAL_OR_GAP = re.compile(r"""('(?:[^']|'')*'|"(?:[^"]|"")*"|`[^`]*`)|(?:\s|--[^\n]*|/\*.*?\*/)+""", re.S)
_WORDS = re.compile(r"\w\w")


def statements_only(sql: str) -> str:
    """``sql`` without comments or layout: a gap outside quotes is one space between words, else nothing."""

    def keep(m: re.Match[str]) -> str:
        if m.group(1):
            return m.group(1)
        before, after = sql[m.start() - 1 : m.start()], sql[m.end() : m.end() + 1]
        return " " if _WORDS.fullmatch(before + after) else ""

    return _LITERAL_OR_GAP.sub(keep, sql).strip()


_BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_versions (
    owner TEXT NOT NULL,
    version BIGINT NOT NULL,
    checksum TEXT NOT NULL,
    applied BIGINT NOT NULL,
    PRIMARY KEY (owner, version)
)
"""


def split_statements(sql: str) -> Iterator[str]:
    """Split a script into complete statements (triggers' inner ``;`` included).

    ``executescript`` cannot be used: it commits a pending transaction
    first, which would break one-transaction-per-migration.
    """
    buf = ""
    for piece in sql.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            stmt = buf.strip()
            buf = ""
            if stmt.strip(";").strip() and not _only_comments(stmt):
                yield stmt
    if buf.strip(";").strip() and not _only_comments(buf):
        raise MigrationError(f"incomplete SQL statement at end of migration: {buf.strip()[:80]!r}")


def _only_comments(stmt: str) -> bool:
    lines = [ln.strip() for ln in stmt.strip(";").splitlines()]
    return all(not ln or ln.startswith("--") for ln in lines)


def _validate(migrations: list[Migration]) -> dict[str, list[Migration]]:
    by_owner: dict[str, list[Migration]] = {}
    for m in migrations:
        if not m.owner:
            raise MigrationError("migration with empty owner")
        if m.version < 1:
            raise MigrationError(f"{m.owner}: migration version must be >= 1, got {m.version}")
        by_owner.setdefault(m.owner, []).append(m)
    for owner, ms in by_owner.items():
        ms.sort(key=lambda m: m.version)
        versions = [m.version for m in ms]
        if len(set(versions)) != len(versions):
            raise MigrationError(f"{owner}: duplicate migration versions {versions}")
    return by_owner


#: Key of the PostgreSQL advisory lock held while migrating: when several
#: nodes start at once, one applies the migrations and the others wait for it,
#: then find nothing left to do.
MIGRATION_LOCK_KEY = 0x6D6F7874  # "moxt"


def apply_migrations(conn: Connection, migrations: Iterable[Migration]) -> list[Migration]:
    """Apply what is not applied yet; returns the migrations applied now.

    ``conn`` must be in autocommit mode (``isolation_level=None``). Owners
    are applied in the order they first appear (core first), each owner's
    versions in ascending order. A changed ``sql`` of an applied version is
    logged, not re-applied (never edit a released migration).
    """
    by_owner = _validate(list(migrations))
    if dialect(conn) != "postgres":
        return _apply_all(conn, by_owner)
    from core.store.pg import COMPAT_FUNCTIONS

    conn.execute("SELECT pg_advisory_lock(?)", (MIGRATION_LOCK_KEY,))
    try:
        for stmt in COMPAT_FUNCTIONS:
            conn.execute(stmt)
        return _apply_all(conn, by_owner)
    finally:
        conn.execute("SELECT pg_advisory_unlock(?)", (MIGRATION_LOCK_KEY,))


def _apply_all(conn: Connection, by_owner: dict[str, list[Migration]]) -> list[Migration]:
    conn.execute(_BOOKKEEPING)
    done: list[Migration] = []
    for owner, ms in by_owner.items():
        recorded = {
            v: c
            for v, c in conn.execute(
                "SELECT version, checksum FROM schema_versions WHERE owner = ?", (owner,)
            )
        }
        current = max(recorded, default=0)
        for m in ms:
            if m.version <= current:
                if m.version in recorded and not m.recorded_as(recorded[m.version]):
                    log.warning(
                        "migration %s/%d changed after it was applied; not re-applied",
                        owner,
                        m.version,
                    )
                continue
            _apply_one(conn, m)
            done.append(m)
            log.info("applied migration %s/%d", owner, m.version)
        for v in recorded:
            if v > (ms[-1].version if ms else 0):
                log.warning("database has %s schema version %d, newer than this code", owner, v)
    return done


def _apply_one(conn: Connection, m: Migration) -> None:
    pg = dialect(conn) == "postgres"
    conn.execute("BEGIN" if pg else "BEGIN IMMEDIATE")
    try:
        for stmt in split_statements(m.sql_for(dialect(conn))):
            if pg and m.postgres is None:
                from core.store.pg import translate_ddl

                stmt = translate_ddl(stmt)
            conn.execute(stmt)
        conn.execute(
            "INSERT INTO schema_versions (owner, version, checksum, applied) VALUES (?, ?, ?, ?)",
            (m.owner, m.version, m.checksum, to_db_time(utcnow())),
        )
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if isinstance(exc, Exception):
            raise MigrationError(f"migration {m.owner}/{m.version} failed: {exc}") from exc
        raise
