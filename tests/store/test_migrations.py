"""Schema versions per owner: core + plugin migrations, applied once, in order."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from core.store import Migration, MigrationError, Store
from core.store.migrations import split_statements

V1 = Migration(
    "webhooks",
    1,
    """
    CREATE TABLE webhooks_pending (id INTEGER PRIMARY KEY, url TEXT NOT NULL);
    -- a row inserted by the migration shows whether it ran twice
    INSERT INTO webhooks_pending (url) VALUES ('seed');
    CREATE TRIGGER webhooks_touch AFTER INSERT ON webhooks_pending BEGIN
        UPDATE webhooks_pending SET url = url || ';' WHERE id = NEW.id;
    END;
    """,
)
V2 = Migration("webhooks", 2, "ALTER TABLE webhooks_pending ADD COLUMN attempts INTEGER DEFAULT 0")
OTHER = Migration("suppression", 1, "CREATE TABLE suppression_list (address TEXT PRIMARY KEY)")


def _db(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(path / "moxtrio.db")


def _versions(path: Path) -> list[tuple[str, int]]:
    conn = _db(path)
    try:
        return list(
            conn.execute("SELECT owner, version FROM schema_versions ORDER BY owner, version")
        )
    finally:
        conn.close()


async def test_plugin_migrations_applied_once_and_versioned(tmp_path: Path) -> None:
    async with await Store.open(tmp_path, [V1, OTHER]):
        pass
    assert _versions(tmp_path) == [
        ("core", 1), ("core-leases", 1), ("core-secrets", 1), ("suppression", 1), ("webhooks", 1)
    ]
    # Reopen: nothing is applied twice (the seed row would be duplicated).
    async with await Store.open(tmp_path, [OTHER, V1]) as store:
        seeds = await store.read(
            lambda c: c.execute("SELECT COUNT(*) FROM webhooks_pending").fetchone()[0]
        )
        # The trigger (with ';' inside its body) was created whole.
        url = await store.write(
            lambda c: c.execute(
                "INSERT INTO webhooks_pending (url) VALUES ('u') RETURNING id"
            ).fetchone()[0]
        )
        touched = await store.read(
            lambda c: c.execute("SELECT url FROM webhooks_pending WHERE id = ?", (url,)).fetchone()[
                0
            ]
        )
    assert seeds == 1
    assert touched == "u;"
    # A new version applies only itself.
    async with await Store.open(tmp_path, [V1, V2, OTHER]) as store:
        cols = await store.read(
            lambda c: [r[1] for r in c.execute("PRAGMA table_info(webhooks_pending)")]
        )
        seeds = await store.read(
            lambda c: c.execute(
                "SELECT COUNT(*) FROM webhooks_pending WHERE url = 'seed'"
            ).fetchone()[0]
        )
    assert "attempts" in cols
    assert seeds == 1
    assert _versions(tmp_path) == [
        ("core", 1),
        ("core-leases", 1),
        ("core-secrets", 1),
        ("suppression", 1),
        ("webhooks", 1),
        ("webhooks", 2),
    ]


async def test_failed_migration_rolls_back_and_store_refuses_to_open(tmp_path: Path) -> None:
    broken = Migration(
        "plug", 1, "CREATE TABLE plug_a (x INTEGER); INSERT INTO no_such_table VALUES (1);"
    )
    with pytest.raises(MigrationError, match="plug/1"):
        await Store.open(tmp_path, [broken])
    conn = _db(tmp_path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert "plug_a" not in tables  # the whole migration rolled back
    assert "accounts" in tables  # core's migration had committed on its own
    assert ("plug", 1) not in _versions(tmp_path)
    # Fixed migration applies on the next start.
    fixed = Migration("plug", 1, "CREATE TABLE plug_a (x INTEGER)")
    async with await Store.open(tmp_path, [fixed]):
        pass
    assert ("plug", 1) in _versions(tmp_path)


async def test_inconsistent_migrations_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MigrationError, match="duplicate"):
        await Store.open(tmp_path, [Migration("p", 1, "SELECT 1"), Migration("p", 1, "SELECT 2")])
    with pytest.raises(MigrationError, match=">= 1"):
        await Store.open(tmp_path, [Migration("p", 0, "SELECT 1")])


async def test_migrations_apply_in_version_order(tmp_path: Path) -> None:
    # Given out of order, v1 must still run before v2 (v2 depends on v1's table).
    m1 = Migration("p", 1, "CREATE TABLE p_t (a INTEGER)")
    m2 = Migration("p", 2, "CREATE INDEX p_t_a ON p_t (a)")
    async with await Store.open(tmp_path, [m2, m1]):
        pass
    assert ("p", 2) in _versions(tmp_path)


def test_split_statements() -> None:
    stmts = list(
        split_statements(
            "CREATE TABLE a (x TEXT DEFAULT ';');\n-- comment only;\n"
            "CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1; SELECT 2; END;"
        )
    )
    assert len(stmts) == 2
    assert stmts[0].startswith("CREATE TABLE a")
    assert stmts[1].endswith("END;")
    with pytest.raises(MigrationError):
        list(split_statements("CREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT 1;"))
