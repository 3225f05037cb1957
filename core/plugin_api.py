"""Types that plugins receive from, and hand back to, the core.

Kept apart from the runtime so that a plugin (and the webapi's typed
client) can import them without starting or configuring a server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.loginlimit import LoginLimiter

if TYPE_CHECKING:  # pragma: no cover
    from core.config import Config
    from core.dispatch import HookDispatcher
    from core.store import Store


class PluginConfigError(Exception):
    """A plugin's setting is wrong; the server refuses to start with this text."""


class PluginLoadError(Exception):
    """A plugin named in mox.conf cannot be found or imported."""


@dataclass(frozen=True)
class Rejection:
    """A verdict that refuses mail, rendered as an SMTP reply or a webapi error.

    ``code`` and ``enhanced`` follow RFC 5321/3463 (``550``, ``5.0.0``);
    ``timeout`` asks the core to stall like a hung server before replying.
    """

    code: int
    enhanced: str
    text: str
    timeout: bool = False

    @property
    def permanent(self) -> bool:
        return self.code >= 500


@dataclass
class CtlResult:
    """What a control command prints and its exit status."""

    output: str = ""
    exit_code: int = 0


@dataclass
class CtlRequest:
    """A control command's arguments (after its word path) and standard input."""

    args: list[str]
    stdin: str = ""


CtlHandler = Callable[["PluginContext", CtlRequest], Awaitable[CtlResult]]


@dataclass(frozen=True)
class CtlCommand:
    """A command reachable through the control socket and the CLI."""

    path: tuple[str, ...]
    handler: CtlHandler
    help: str = ""
    #: Arguments after the flags, for ``moxtrio help``: ``"[flags] id"``.
    usage: str = ""
    #: ``(flag, description)`` pairs for ``moxtrio help`` and ``-h``.
    flags: tuple[tuple[str, str], ...] = ()


BlueprintFactory = Callable[["PluginContext", str], Any]


@dataclass(frozen=True)
class HTTPService:
    """An HTTP service a plugin serves on the listeners that enable it.

    ``config_keys`` are the listener keys that enable it, plain HTTP first
    (e.g. ``("WebAPIHTTP", "WebAPIHTTPS")``); ``default_path`` applies when
    the config sets no ``Path``; ``blueprint`` builds a Quart blueprint for a
    concrete path (always ending in ``/``).
    """

    name: str
    config_keys: Sequence[str]
    default_path: str
    blueprint: BlueprintFactory


@dataclass
class PluginContext:
    """The running server as plugins see it.

    Plugins use the core only through this object and hooks: the config,
    the store, the hook dispatcher (to call other plugins' services without
    importing them), and a registry of core services (``services``) such as
    the queue API that later core modules fill in.
    """

    config: Config
    store: Store
    hooks: HookDispatcher
    localserve: bool = False
    services: dict[str, Any] = field(default_factory=dict)
    #: The server's one failed-login limiter: every protocol that checks
    #: passwords (SMTP AUTH, webapi, web logins) checks and feeds it.
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """Settings of plugin ``name`` from ``<config dir>/plugins/<name>.yaml``.

        mox.conf has no room for third-party settings, and adding keys would
        make it invalid for mox; a YAML file per plugin beside it keeps mox's
        files untouched. Returns ``{}`` when the file does not exist.
        """
        return read_settings_file(settings_path(self.config.dir, name))


def settings_path(config_dir: str | Path, name: str) -> Path:
    """Where the settings of plugin (or core area) ``name`` live."""
    return Path(config_dir) / "plugins" / f"{name}.yaml"


def read_settings_file(path: Path) -> dict[str, Any]:
    """A settings YAML file as a mapping; ``{}`` when it does not exist."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise PluginConfigError(f"{where}: invalid yaml: {getattr(exc, 'problem', None) or exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PluginConfigError(f"{path}: expected a mapping of settings")
    return data
