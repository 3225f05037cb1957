"""Which database the store uses: ``<config dir>/plugins/store.yaml``.

Without the file (or without its ``Database`` section) the store is SQLite
in the data directory, as always. PostgreSQL is chosen with::

    Database:
      Backend: postgres
      # exactly one of:
      URL: postgresql://moxtrio@db.example/moxtrio
      URLFile: /etc/moxtrio/database-url     # the URL, read at start-up
      URLEnv: MOXTRIO_DATABASE_URL           # environment variable holding it

``URLFile`` and ``URLEnv`` keep a password out of the config directory.
An invalid section stops start-up (and fails ``moxtrio config test``) with
``store.yaml: ...`` naming the problem.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SETTINGS_FILE = "store.yaml"
BACKENDS = ("sqlite", "postgres")
_KEYS = ("Backend", "URL", "URLFile", "URLEnv")


class DatabaseSettingsError(ValueError):
    """store.yaml's Database section is unusable (the message names the problem)."""


@dataclass(frozen=True)
class DatabaseSettings:
    """The store's database: ``backend`` and, for PostgreSQL, where its URL comes from."""

    backend: str = "sqlite"
    url: str = ""
    url_file: str = ""
    url_env: str = ""

    def resolved_url(self) -> str:
        """The connection URL (reads ``url_file`` / ``url_env`` now)."""
        if self.url:
            return self.url
        if self.url_file:
            try:
                url = Path(self.url_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise DatabaseSettingsError(f"Database URLFile {self.url_file}: {exc.strerror or exc}") from exc
            if not url:
                raise DatabaseSettingsError(f"Database URLFile {self.url_file} is empty")
            return url
        if self.url_env:
            url = os.environ.get(self.url_env, "").strip()
            if not url:
                raise DatabaseSettingsError(f"Database URLEnv: environment variable {self.url_env} is not set")
            return url
        raise DatabaseSettingsError("Database: postgres needs URL, URLFile or URLEnv")


def parse_database_settings(data: dict[str, Any], where: str = SETTINGS_FILE) -> DatabaseSettings:
    """The ``Database`` section of store.yaml's mapping (``{}``: SQLite)."""
    section = data.get("Database")
    unknown = sorted(set(data) - {"Database"})
    if unknown:
        raise DatabaseSettingsError(f"{where}: unknown key {unknown[0]!r} (known: Database)")
    if section is None:
        return DatabaseSettings()
    if not isinstance(section, dict):
        raise DatabaseSettingsError(f"{where}: Database must be a mapping")
    bad = sorted(k for k in section if k not in _KEYS)
    if bad:
        raise DatabaseSettingsError(f"{where}: Database: unknown key {bad[0]!r} (known: {', '.join(_KEYS)})")
    for k, v in section.items():
        if not isinstance(v, str):
            raise DatabaseSettingsError(f"{where}: Database {k} must be a string")
    backend = section.get("Backend", "sqlite")
    if backend not in BACKENDS:
        raise DatabaseSettingsError(f"{where}: Database Backend {backend!r}: must be sqlite or postgres")
    sources = [k for k in ("URL", "URLFile", "URLEnv") if section.get(k)]
    if backend == "sqlite":
        if sources:
            raise DatabaseSettingsError(f"{where}: Database {sources[0]} is only for Backend postgres")
        return DatabaseSettings()
    if len(sources) != 1:
        raise DatabaseSettingsError(
            f"{where}: Database Backend postgres needs exactly one of URL, URLFile, URLEnv"
            + (f" (got {', '.join(sources)})" if sources else "")
        )
    s = DatabaseSettings(
        backend="postgres",
        url=section.get("URL", ""),
        url_file=section.get("URLFile", ""),
        url_env=section.get("URLEnv", ""),
    )
    try:
        url = s.resolved_url()
    except DatabaseSettingsError as exc:
        raise DatabaseSettingsError(f"{where}: {exc}") from exc
    if not url.startswith(("postgresql://", "postgres://")) and "=" not in url:
        raise DatabaseSettingsError(
            f"{where}: Database URL must be a postgresql:// URL or a libpq key=value string"
        )
    return s


def load_database_settings(config_dir: Path | str) -> DatabaseSettings:
    """Read ``<config dir>/plugins/store.yaml`` (DatabaseSettingsError when invalid)."""
    from core.plugin_api import PluginConfigError, read_settings_file

    path = Path(config_dir) / "plugins" / SETTINGS_FILE
    try:
        data = read_settings_file(path)
    except PluginConfigError as exc:
        raise DatabaseSettingsError(str(exc)) from exc
    return parse_database_settings(data, str(path))
