"""Choosing the database: store.yaml's Database section, its errors, and start-up."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from core.store import Store
from core.store.settings import DatabaseSettings, DatabaseSettingsError, parse_database_settings
from core.store.sql import DatabaseUnavailable
from tests.support.pgcluster import PgCluster
from tests.support.procs import run_cli, unique_loopback_ip


def test_default_is_sqlite() -> None:
    assert parse_database_settings({}) == DatabaseSettings()
    assert parse_database_settings({"Database": {"Backend": "sqlite"}}).backend == "sqlite"


def test_url_from_value_file_or_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = "postgresql://moxtrio:secret@db.example/moxtrio"
    s = parse_database_settings({"Database": {"Backend": "postgres", "URL": url}})
    assert s.backend == "postgres" and s.resolved_url() == url
    f = tmp_path / "db-url"
    f.write_text(url + "\n")
    assert parse_database_settings({"Database": {"Backend": "postgres", "URLFile": str(f)}}).resolved_url() == url
    monkeypatch.setenv("MOX_DB", url)
    assert parse_database_settings({"Database": {"Backend": "postgres", "URLEnv": "MOX_DB"}}).resolved_url() == url


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"Backend": "mysql"}, "Database Backend 'mysql': must be sqlite or postgres"),
        ({"Backend": "postgres"}, "needs exactly one of URL, URLFile, URLEnv"),
        ({"Backend": "postgres", "URL": "postgresql://a/b", "URLEnv": "X"}, "(got URL, URLEnv)"),
        ({"Backend": "postgres", "URLEnv": "MOXTRIO_TEST_UNSET_VARIABLE"},
         "environment variable MOXTRIO_TEST_UNSET_VARIABLE is not set"),
        ({"Backend": "postgres", "URLFile": "/nonexistent/db-url"}, "Database URLFile /nonexistent/db-url:"),
        ({"Backend": "postgres", "URL": "mysql://x"}, "must be a postgresql:// URL"),
        ({"Backend": "sqlite", "URL": "postgresql://a/b"}, "URL is only for Backend postgres"),
        ({"Backend": "postgres", "Url": "postgresql://a/b"}, "unknown key 'Url'"),
        ("postgres", "Database must be a mapping"),
    ],
)
def test_invalid_sections_name_the_problem(section: object, message: str) -> None:
    with pytest.raises(DatabaseSettingsError, match="^store.yaml: ") as info:
        parse_database_settings({"Database": section})
    assert message in str(info.value)


def test_config_test_and_serve_refuse_a_bad_database_section(tmp_path: Path) -> None:
    directory = tmp_path / "ls"
    r = run_cli("localserve", "-dir", str(directory), "-ip", unique_loopback_ip(), "-initonly")
    assert r.returncode == 0, r.stderr
    conf = directory / "mox.conf"
    settings = directory / "plugins" / "store.yaml"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text("Database:\n  Backend: postgres\n  URLEnv: MOXTRIO_TEST_UNSET_VARIABLE\n")
    r = run_cli("config", "test", "-config", str(conf))
    assert r.returncode == 1
    assert f"{settings}: Database URLEnv: environment variable MOXTRIO_TEST_UNSET_VARIABLE is not set" in r.stderr
    serve = run_cli("-config", str(conf), "serve")
    assert serve.returncode == 1 and "MOXTRIO_TEST_UNSET_VARIABLE is not set" in serve.stderr
    assert not (directory / "data" / "moxtrio.db").exists()


async def test_nodes_starting_together_migrate_once(
    tmp_path: Path, pg_cluster: PgCluster
) -> None:
    """Three stores opening one empty database at once: one migrates, the others wait."""
    name = pg_cluster.create_database()
    settings = DatabaseSettings(backend="postgres", url=pg_cluster.url(name))
    stores: list[Store] = []

    async def open_one(i: int) -> None:
        stores.append(await Store.open(tmp_path / f"node{i}", database=settings))

    try:
        async with trio.open_nursery() as nursery:
            for i in range(3):
                nursery.start_soon(open_one, i)
        rows = await stores[0].read(
            lambda c: c.execute("SELECT owner, version FROM schema_versions ORDER BY owner").fetchall()
        )
        assert [tuple(r) for r in rows] == [
            ("core", 1), ("core-files-postgres", 1), ("core-leases", 1), ("core-secrets", 1)
        ]
    finally:
        for s in stores:
            await s.aclose()
        pg_cluster.drop_database(name)


async def test_unreachable_database_fails_start_with_a_clear_error(tmp_path: Path) -> None:
    # A loopback address and port where nothing listens.
    settings = DatabaseSettings(backend="postgres", url=f"postgresql://x@{unique_loopback_ip()}:1/db?connect_timeout=3")
    with pytest.raises(DatabaseUnavailable, match="^cannot connect to PostgreSQL at postgresql://x@"):
        await Store.open(tmp_path, database=settings)


def test_logged_url_hides_the_password() -> None:
    from core.store.pgengine import redact_url

    assert redact_url("postgresql://mox:s3cret@db.example:5433/mail") == "postgresql://mox:***@db.example:5433/mail"
    assert redact_url("postgresql://mox@db.example/mail") == "postgresql://mox@db.example/mail"


def test_missing_postgresql_binaries_say_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.support import pgcluster

    monkeypatch.setattr(pgcluster.shutil, "which", lambda name: None)
    monkeypatch.setattr(pgcluster.glob, "glob", lambda pattern: [])
    with pytest.raises(pgcluster.PostgresMissing, match=r"apt-get install -y postgresql"):
        pgcluster.find_bindir()
