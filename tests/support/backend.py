"""The database backend of the running test, for helpers that open stores or servers.

A suite that runs on both backends has an autouse fixture depending on
``default_db_backend`` (tests/conftest.py), which sets :data:`CURRENT` for
the test; ``running_server``, the suites' store fixtures and child servers
(through ``plugins/store.yaml``) then use that database.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from core.store.settings import SETTINGS_FILE, DatabaseSettings

#: None: SQLite in the data directory (the default).
CURRENT: DatabaseSettings | None = None


def current() -> DatabaseSettings | None:
    return CURRENT


def write_store_settings(config_dir: Path, database: DatabaseSettings | None) -> None:
    """Point a server's config at ``database`` (``plugins/store.yaml``); None: leave SQLite."""
    if database is None or database.backend != "postgres":
        return
    d = config_dir / "plugins"
    d.mkdir(parents=True, exist_ok=True)
    doc = {"Database": {"Backend": "postgres", "URL": database.resolved_url()}}
    (d / SETTINGS_FILE).write_text(yaml.safe_dump(doc), encoding="utf-8")
