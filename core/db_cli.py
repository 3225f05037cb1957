"""``moxtrio db migrate|status|copy``: the store's schema and contents, from the command line.

These run in the ``moxtrio`` process against the database ``-config`` names
(``plugins/store.yaml``), with or without a server running:

- ``db migrate`` applies the core's and the configured plugins' pending
  migrations. On PostgreSQL it holds the store's migration lock, so when
  several nodes (or this command and a starting node) migrate at once, one
  applies and the others wait and then find nothing to do. Run it once
  before upgrading the nodes of a cluster.
- ``db status`` changes nothing: backend, schema versions per owner,
  pending migrations, and the delivery and webhook leases each node holds.
- ``db copy`` copies a SQLite store (rows and message bodies) into an empty
  PostgreSQL database; see :mod:`core.cluster.sqlite_copy`.

Errors go to stderr with exit status 1.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.store.migrations import Migration, MigrationError
from core.store.sql import DatabaseError


class DBCommandError(Exception):
    """A problem the user must fix; printed as ``moxtrio db: <message>``."""


#: What a command reports on stderr (exit 1) instead of a traceback.
_FAILURES: tuple[type[Exception], ...] = (DBCommandError, MigrationError, *DatabaseError)


@dataclass
class Target:
    """The store a command works on."""

    config: Any
    backend: str
    description: str
    url: str
    data_dir: Path
    migrations: list[Migration]


def load_target(config_path: str) -> Target:
    """Config, database settings and the migrations of the configured plugins."""
    from core import outbox
    from core.config import ConfigError, load_config
    from core.dispatch import HookDispatcher, HookFailed
    from core.plugin_api import PluginLoadError
    from core.plugins import create_manager
    from core.store.pgengine import redact_url
    from core.store.schema import CORE_MIGRATIONS
    from core.store.settings import DatabaseSettingsError, load_database_settings

    try:
        config = load_config(config_path)
        hooks = HookDispatcher(create_manager(config.plugins))
        migrations = [*CORE_MIGRATIONS, *hooks.setup("moxtrio_migrations"), *outbox.migrations(hooks)]
        database = load_database_settings(config.dir)
        url = database.resolved_url() if database.backend == "postgres" else ""
    except (ConfigError, PluginLoadError, DatabaseSettingsError, HookFailed, OSError) as exc:
        raise DBCommandError(str(exc)) from exc
    data_dir = Path(config.data_dir)
    if database.backend == "postgres":
        return Target(config, "postgres", redact_url(url), url, data_dir, migrations)
    from core.store.db import DB_NAME

    path = data_dir / DB_NAME
    return Target(config, "sqlite", str(path), "", data_dir, migrations)


def connect(t: Target, *, readonly: bool) -> Any:
    """A plain connection (autocommit) to the target's database."""
    from core.store.sql import DatabaseError

    try:
        if t.backend == "postgres":
            from core.store.pg import connect as pg_connect

            return pg_connect(t.url)
        from core.store.db import _connect

        path = Path(t.description)
        if readonly and not path.exists():
            raise DBCommandError(f"no database at {path}")
        if not readonly:
            path.parent.mkdir(parents=True, exist_ok=True)
        return _connect(path, readonly=readonly)
    except DatabaseError as exc:
        raise DBCommandError(f"connecting to {t.description}: {exc}") from exc


def applied_versions(conn: Any) -> dict[str, dict[int, str]]:
    """owner -> {version: checksum} recorded in the database ({} before any migration)."""
    from core.store.sql import DatabaseError, dialect

    if dialect(conn) == "postgres":
        exists = conn.execute("SELECT to_regclass('schema_versions') IS NOT NULL").fetchone()[0]
    else:
        exists = conn.execute(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'schema_versions'"
        ).fetchone()[0]
    if not exists:
        return {}
    out: dict[str, dict[int, str]] = {}
    try:
        for owner, version, checksum in conn.execute("SELECT owner, version, checksum FROM schema_versions"):
            out.setdefault(str(owner), {})[int(version)] = str(checksum)
    except DatabaseError as exc:
        raise DBCommandError(f"reading schema versions: {exc}") from exc
    return out


def pending(migrations: Iterable[Migration], applied: dict[str, dict[int, str]]) -> list[Migration]:
    """Migrations above their owner's recorded version."""
    out = []
    for m in migrations:
        done = applied.get(m.owner, {})
        if m.version > max(done, default=0):
            out.append(m)
    return sorted(out, key=lambda m: (m.owner, m.version))


def cmd_migrate(config_path: str) -> int:
    from core.store.migrations import apply_migrations

    try:
        t = load_target(config_path)
        conn = connect(t, readonly=False)
        try:
            done = apply_migrations(conn, t.migrations)
        finally:
            conn.close()
    except _FAILURES as exc:
        print(f"moxtrio db migrate: {exc}", file=sys.stderr)
        return 1
    for m in done:
        print(f"applied {m.owner} {m.version}")
    print(f"{t.backend} {t.description}: schema up to date" + ("" if done else " (nothing to apply)"))
    return 0


def status_text(t: Target, conn: Any) -> str:
    from core.cluster import lease as leases
    from core.cluster.node import now_us
    from core.store.sql import DatabaseError

    applied = applied_versions(conn)
    lines = [f"backend: {t.backend} {t.description}", "schema versions:"]
    known = {m.owner for m in t.migrations}
    for owner in sorted(known | set(applied)):
        versions = applied.get(owner, {})
        cur = max(versions, default=0)
        code = max((m.version for m in t.migrations if m.owner == owner), default=0)
        note = "" if owner in known else " (no configured code for this owner)"
        if cur > code and owner in known:
            note = f" (newer than this code's {code})"
        lines.append(f"  {owner:<24}{cur}{note}")
    todo = pending(t.migrations, applied)
    lines.append("pending migrations: " + (", ".join(f"{m.owner} {m.version}" for m in todo) or "none"))
    lines.append("leases in flight (node: entries):")
    at = now_us()
    any_lease = False
    for table, label in (("queue", "deliveries"), ("webhook_queue", "webhooks")):
        try:
            held = leases.in_flight(conn, table, at)
        except DatabaseError:
            continue  # table or lease columns not there yet (pending migrations)
        for node, n in held:
            any_lease = True
            lines.append(f"  {node}: {n} {label}")
    if not any_lease:
        lines.append("  none")
    return "\n".join(lines) + "\n"


def cmd_status(config_path: str) -> int:
    try:
        t = load_target(config_path)
        conn = connect(t, readonly=True)
        try:
            text = status_text(t, conn)
        finally:
            conn.close()
    except _FAILURES as exc:
        print(f"moxtrio db status: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(text)
    return 0


def cmd_copy(config_path: str, to: str, to_file: str, to_env: str) -> int:
    from core.cluster.sqlite_copy import CopyError, copy_store
    from core.store.settings import DatabaseSettings, DatabaseSettingsError, parse_database_settings

    try:
        t = load_target(config_path)
        if t.backend != "sqlite":
            raise DBCommandError(
                "-config must name the SQLite installation to copy from (its store.yaml selects postgres)"
            )
        sources = {"URL": to, "URLFile": to_file, "URLEnv": to_env}
        given = {k: v for k, v in sources.items() if v}
        if len(given) != 1:
            raise DBCommandError("give exactly one of -to, -to-file, -to-env (the PostgreSQL database)")
        settings: DatabaseSettings = parse_database_settings(
            {"Database": {"Backend": "postgres", **given}}, "-to"
        )
        report = copy_store(t.data_dir, settings.resolved_url(), t.migrations, log=sys.stdout)
    except (CopyError, DatabaseSettingsError) as exc:
        print(f"moxtrio db copy: {exc}", file=sys.stderr)
        return 1
    except _FAILURES as exc:
        print(f"moxtrio db copy: {exc}", file=sys.stderr)
        return 1
    sys.stdout.write(report)
    return 0
