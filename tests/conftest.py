"""Suite-wide set-up: no DNS lookup of the tests leaves the machine.

Servers the tests start as child processes, and any in-process resolver made
without explicit name servers, read ``MOXTRIO_NAMESERVERS``. It points at a
loopback responder with no records (every name is NXDOMAIN), so a lookup the
test did not arrange fails at once instead of going to the machine's resolver.
Tests that need records start their own responder and pass it explicitly.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from core.dns import NAMESERVERS_ENV
from tests.support.dnsresponder import DNSResponder
from tests.support.pgcluster import PgCluster

if TYPE_CHECKING:
    from core.store.settings import DatabaseSettings

_responder = DNSResponder().start()
os.environ[NAMESERVERS_ENV] = f"{_responder.host}:{_responder.port}"


def pytest_unconfigure(config: pytest.Config) -> None:
    _responder.stop()


# -- database backends ---------------------------------------------------------
#
# The store runs on SQLite (default) and PostgreSQL. ``db_backend`` is
# parametrized with the ids ``sqlite`` and ``postgres`` (``pytest -k postgres``
# selects the PostgreSQL runs); it gives the DatabaseSettings to open a Store
# with (None: SQLite in the data directory). Each PostgreSQL test gets its
# own fresh database, a copy of a template in which the core migrations are
# already applied, in a private cluster started once per session.


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    cluster = PgCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster) -> str:
    """A database with the core migrations applied, copied for every test."""
    import trio

    from core.store import Store
    from core.store.settings import DatabaseSettings

    name = pg_cluster.create_database()

    async def migrate() -> None:
        with tempfile.TemporaryDirectory(prefix="moxtrio-pgtemplate-") as d:
            settings = DatabaseSettings(backend="postgres", url=pg_cluster.url(name))
            store = await Store.open(d, database=settings)
            await store.aclose()

    trio.run(migrate)
    return name


@pytest.fixture
def pg_database(pg_cluster: PgCluster, pg_template: str) -> Iterator[DatabaseSettings]:
    """A fresh PostgreSQL database for one test (dropped after it)."""
    from core.store.settings import DatabaseSettings

    name = pg_cluster.create_database(template=pg_template)
    try:
        yield DatabaseSettings(backend="postgres", url=pg_cluster.url(name))
    finally:
        pg_cluster.drop_database(name)


@pytest.fixture(params=["sqlite", "postgres"])
def db_backend(request: pytest.FixtureRequest) -> DatabaseSettings | None:
    """The store's database for a test that runs on both backends."""
    if request.param == "sqlite":
        return None
    settings: DatabaseSettings = request.getfixturevalue("pg_database")
    return settings


@pytest.fixture
def default_db_backend(
    db_backend: DatabaseSettings | None, monkeypatch: pytest.MonkeyPatch
) -> DatabaseSettings | None:
    """``db_backend``, also made the default of running_server and the suites' stores."""
    from tests.support import backend

    monkeypatch.setattr(backend, "CURRENT", db_backend)
    return db_backend
