"""``moxtrio db migrate|status|copy`` as a user runs them, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cluster.helpers import db_query
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.procs import run_cli

pytestmark = pytest.mark.slow


def use_postgres(directory: Path, url: str) -> None:
    plugins = directory / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "store.yaml").write_text(f"Database:\n  Backend: postgres\n  URL: {url}\n")


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migrate_then_status(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> None:
    directory, _ = localserve_config_dir(tmp_path)
    if backend == "postgres":
        use_postgres(directory, request.getfixturevalue("pg_database").url)
    conf = str(directory / "mox.conf")
    before = run_cli("-config", conf, "db", "status")
    if backend == "sqlite":
        assert before.returncode == 1 and "no database at" in before.stderr
    else:
        # The test database has the core's tables; the plugins' are pending.
        assert before.returncode == 0, before.stderr
        assert "pending migrations: " in before.stdout and "webhooks 2" in before.stdout
    first = run_cli("-config", conf, "db", "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied webhooks 2" in first.stdout and "applied core-leases 1" in first.stdout or backend == "postgres"
    assert "applied webhooks 2" in first.stdout
    again = run_cli("-config", conf, "db", "migrate")
    assert again.returncode == 0 and "applied" not in again.stdout and "nothing to apply" in again.stdout
    status = run_cli("-config", conf, "db", "status")
    assert status.returncode == 0, status.stderr
    out = status.stdout
    assert out.startswith(f"backend: {backend} ")
    assert "password" not in out
    assert "\n  core                    1\n" in out and "\n  webhooks                2\n" in out
    assert "pending migrations: none" in out
    assert "leases in flight (node: entries):\n  none\n" in out


def test_status_shows_leases_per_node(tmp_path: Path, pg_database: Any) -> None:
    directory, _ = localserve_config_dir(tmp_path)
    use_postgres(directory, pg_database.url)
    conf = str(directory / "mox.conf")
    assert run_cli("-config", conf, "db", "migrate").returncode == 0
    import psycopg

    with psycopg.connect(pg_database.url, autocommit=True) as conn:
        for node in ("node-a", "node-a", "node-b"):
            conn.execute(
                "INSERT INTO queue (queued, sender_account, sender_localpart, sender_domain,"
                " sender_domain_str, recipient_localpart, recipient_domain, recipient_domain_str,"
                " next_attempt, lease_node, lease_until) VALUES"
                " (0, 'mox', 'mox', 'localhost', 'localhost', 'x', 'example.org', 'example.org',"
                " 0, %s, 9000000000000000)",
                (node,),
            )
    out = run_cli("-config", conf, "db", "status").stdout
    assert "  node-a: 2 deliveries\n  node-b: 1 deliveries\n" in out


def test_errors_go_to_stderr_with_status_1(tmp_path: Path) -> None:
    missing = run_cli("-config", str(tmp_path / "nope" / "mox.conf"), "db", "status")
    assert missing.returncode == 1 and missing.stderr.startswith("moxtrio db status: ") and not missing.stdout
    directory, _ = localserve_config_dir(tmp_path)
    conf = str(directory / "mox.conf")
    no_target = run_cli("-config", conf, "db", "copy")
    assert no_target.returncode == 1
    assert "give exactly one of -to, -to-file, -to-env" in no_target.stderr
    (directory / "plugins").mkdir()
    (directory / "plugins" / "store.yaml").write_text("Database:\n  Backend: postgres\n  URLEnv: MOXTRIO_NO_SUCH_VAR\n")
    bad = run_cli("-config", conf, "db", "migrate")
    assert bad.returncode == 1 and "MOXTRIO_NO_SUCH_VAR is not set" in bad.stderr
    helptext = run_cli("help", "db")
    assert helptext.returncode == 0
    for words in ("db migrate", "db status", "db copy -to URL"):
        assert f"moxtrio {words}" in helptext.stdout


async def test_copy_sqlite_store_into_empty_postgres(tmp_path: Path, pg_cluster: Any) -> None:
    directory, ip = localserve_config_dir(tmp_path)
    # A SQLite installation with mail in it: Sends delivered to the account
    # (messages and their bodies), retired queue entries, webhook tables.
    async with running_server(directory) as srv:
        async with httpx.AsyncClient(timeout=20) as http:
            for i in range(3):
                req = {"To": [{"Address": "mox@localhost"}], "Subject": f"copy {i}", "Text": f"body {i}\n"}
                r = await http.post(f"http://{ip}:1080/webapi/v0/Send", data={"request": json.dumps(req)},
                                    auth=("mox@localhost", "moxmoxmox"))
                assert r.status_code == 200, r.text
        import trio

        with trio.fail_after(20):
            while await srv.ctx.queue.count():
                await trio.sleep(0.05)
    src = sqlite3.connect(directory / "moxtrio.db")
    tables = [r[0] for r in src.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_versions'"
    )]
    counts = {t: src.execute(f'SELECT COUNT(*) FROM "{t}"').fetchone()[0] for t in tables}
    files = {r[0] for r in src.execute("SELECT file_id FROM messages WHERE file_id IS NOT NULL")}
    queue_seq = src.execute("SELECT seq FROM sqlite_sequence WHERE name = 'queue'").fetchone()[0]
    src.close()
    assert counts["messages"] >= 3 and counts["retired"] >= 3 and files

    url = pg_cluster.url(pg_cluster.create_database())
    conf = str(directory / "mox.conf")
    r = run_cli("-config", conf, "db", "copy", "-to", url, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"copied {counts['messages']} rows of messages" in r.stdout
    assert f"copied {len(files)} message bodies" in r.stdout
    for t, n in counts.items():
        assert db_query(url, f'SELECT COUNT(*) FROM "{t}"')[0][0] == n, t
    for fid in files:
        chunks = db_query(url, "SELECT data FROM message_files WHERE file_id = %s ORDER BY seq", (fid,))
        on_disk = (directory / "msg" / fid).read_bytes()
        assert b"".join(bytes(c[0]) for c in chunks) == on_disk
    # Queue IDs continue above every ID SQLite handed out.
    nextid = db_query(url, "SELECT nextval(pg_get_serial_sequence('queue', 'id'))")[0][0]
    assert nextid > queue_seq
    again = run_cli("-config", conf, "db", "copy", "-to", url)
    assert again.returncode == 1 and "target database is not empty" in again.stderr
