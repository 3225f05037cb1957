"""Migration checksums ignore comments and layout, and databases recorded under the first rule still open.

The first rule recorded sha256 of a migration's whole text, so rewording a
comment looked like editing a released migration.
``tests/data/migrations/first-rule-checksums.json`` holds what databases
of that rule recorded for every first-party migration as released (some
comments have been reworded since; the statements have not changed). A
database holding those must open with today's code without a word.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from core import outbox
from core.dispatch import HookDispatcher
from core.plugins import create_manager
from core.store import Migration, Store
from core.store.migrations import split_statements, statements_only
from core.store.schema import CORE_MIGRATIONS
from tests.support.paths import DATA

FIRST_RULE = DATA / "migrations" / "first-rule-checksums.json"
LOGGER = "moxtrio.store.migrations"


def _first_rule(sql: str) -> str:
    return hashlib.sha256(sql.encode()).hexdigest()


def _plugin_migrations() -> list[Migration]:
    """What a server with all first-party plugins hands the store (as the runtime gathers them)."""
    hooks = HookDispatcher(create_manager(None))
    return hooks.setup("moxtrio_migrations") + outbox.migrations(hooks)


def _released() -> dict[tuple[str, int], str]:
    """What the first rule recorded, by (owner, version)."""
    recorded = json.loads(FIRST_RULE.read_text(encoding="utf-8"))
    assert len(recorded) >= 10, f"no checksums found in {FIRST_RULE}"
    out = {}
    for key, checksum in recorded.items():
        owner, _, version = key.rpartition("/")
        out[(owner, int(version))] = checksum
    return out


def _create_as_first_rule(data_dir: Path, migrations: list[Migration], recorded: dict[tuple[str, int], str]) -> None:
    """A database as the code of the first rule left it: the statements applied, its checksums recorded."""
    data_dir.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(data_dir / "moxtrio.db", isolation_level=None)
    try:
        conn.execute(
            "CREATE TABLE schema_versions (owner TEXT NOT NULL, version INTEGER NOT NULL,"
            " checksum TEXT NOT NULL, applied INTEGER NOT NULL, PRIMARY KEY (owner, version))"
        )
        for m in migrations:
            conn.execute("BEGIN IMMEDIATE")
            for stmt in split_statements(m.sql):
                conn.execute(stmt)
            conn.execute("INSERT INTO schema_versions VALUES (?, ?, ?, 0)",
                         (m.owner, m.version, recorded[(m.owner, m.version)]))
            conn.execute("COMMIT")
    finally:
        conn.close()


def _recorded(data_dir: Path) -> dict[tuple[str, int], str]:
    conn = sqlite3.connect(data_dir / "moxtrio.db")
    try:
        return {(o, v): c for o, v, c in conn.execute("SELECT owner, version, checksum FROM schema_versions")}
    finally:
        conn.close()


async def test_database_recorded_under_the_first_rule_opens_without_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    released = _released()
    plugins = _plugin_migrations()
    current = {(m.owner, m.version): m for m in [*CORE_MIGRATIONS, *plugins]}
    assert set(released) <= set(current), set(released) - set(current)
    # Some comments read differently today: under the first rule these would not match.
    assert any(released[k] != _first_rule(current[k].sql) for k in released)
    data_dir = tmp_path / "data"
    _create_as_first_rule(data_dir, [current[k] for k in released], released)
    before = _recorded(data_dir)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        async with await Store.open(data_dir, plugins) as store:
            tables = await store.read(
                lambda c: {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            )
    problems = [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]
    assert problems == []
    # Nothing was applied again, nothing re-recorded; the released tables are all there.
    applied = {r.getMessage().removeprefix("applied migration ") for r in caplog.records if r.name == LOGGER}
    assert applied.isdisjoint(f"{owner}/{version}" for owner, version in released)
    assert {k: v for k, v in _recorded(data_dir).items() if k in before} == before
    assert {"messages", "queue", "retired", "holdrules_rules", "suppression_list"} <= tables


async def test_new_databases_record_the_comment_free_checksum(tmp_path: Path) -> None:
    plugins = _plugin_migrations()
    async with await Store.open(tmp_path, plugins):
        pass
    recorded = _recorded(tmp_path)
    for m in [*CORE_MIGRATIONS, *plugins]:
        assert recorded[(m.owner, m.version)] == hashlib.sha256(statements_only(m.sql).encode()).hexdigest()


def test_checksum_ignores_comments_and_layout_not_statements_or_literals() -> None:
    base = Migration("t", 1, "-- a table\nCREATE TABLE t (\n    a TEXT DEFAULT 'x  y' -- why\n);\n")
    reworded = Migration("t", 1, "-- the table, reworded\n\nCREATE TABLE t (a TEXT   DEFAULT 'x  y' /* note */);")
    assert reworded.checksum == base.checksum
    assert Migration("t", 1, "CREATE TABLE t (a TEXT DEFAULT 'x y');").checksum != base.checksum
    assert Migration("t", 1, "CREATE TABLE t (a INTEGER DEFAULT 'x  y');").checksum != base.checksum
    # A "--" inside a string literal is data, not a comment.
    assert statements_only("SELECT '--x' -- gone\n, 1 AS  n") == "SELECT'--x',1 AS n"


async def test_comment_edit_is_quiet_a_changed_statement_is_reported(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    first = Migration("t", 1, "-- first words\nCREATE TABLE t_rows (a TEXT);")
    async with await Store.open(tmp_path, [first]):
        pass

    def warnings() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno >= logging.WARNING]

    with caplog.at_level(logging.WARNING, logger=LOGGER):
        async with await Store.open(tmp_path, [Migration("t", 1, "-- other words\nCREATE TABLE  t_rows (a TEXT);")]):
            pass
        assert warnings() == []
        async with await Store.open(tmp_path, [Migration("t", 1, "CREATE TABLE t_rows (a TEXT, b TEXT);")]):
            pass
    assert warnings() == ["migration t/1 changed after it was applied; not re-applied"]
