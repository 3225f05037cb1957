"""Types that plugins receive from, and hand back to, the core.

Kept apart from the runtime so that a plugin (and the webapi's typed
client) can import them without starting or configuring a server.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from core import metrics
from core.cluster import ClusterNode
from core.loginlimit import LoginLimiter

if TYPE_CHECKING:  # pragma: no cover
    import argparse

    import trio

    from core.config import Config
    from core.dispatch import HookDispatcher
    from core.dns import Resolver
    from core.http_server import ConnectionCounter
    from core.mailauth.lookup import ResolverLookup
    from core.queue.clock import Clock
    from core.queue.service import QueueService
    from core.smtp.limits import ConnectionLimits
    from core.store import Store

T = TypeVar("T")


class PluginConfigError(Exception):
    """A plugin's setting is wrong; the server refuses to start with this text."""


class PluginLoadError(Exception):
    """A plugin named in mox.conf cannot be found or imported."""


@dataclass(frozen=True)
class Rejection:
    """A verdict that refuses mail, rendered as an SMTP reply or a webapi error.

    ``code`` and ``enhanced`` follow RFC 5321/3463 (``550``, ``5.0.0``);
    ``timeout`` marks a verdict that plays a hung server. ``stall``, when
    set, is awaited by the SMTP server before it replies: a verdict hook has
    a time limit, so a plugin that wants the client to wait (simulating a
    hung server) hands the waiting back to the server this way.
    """

    code: int
    enhanced: str
    text: str
    timeout: bool = False
    stall: Callable[[], Awaitable[None]] | None = field(default=None, compare=False, repr=False)

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


@dataclass(frozen=True)
class CliCommand:
    """A command the ``moxtrio`` process runs itself, before any server or config exists.

    A plugin's command is its entry-point name alone (``moxtrio NAME -dir
    DIR`` is plugin NAME's); only flags follow the words, so ``NAME word``
    stays free for the plugin's control commands. ``parser`` builds the argparse parser for ``-h`` and for the
    arguments; ``run(loglevel, args)`` gets the global ``-loglevel`` ("" when
    not given) and the parsed arguments and returns the exit status. The
    core's own local commands (``serve``, ``help``...) have no ``run``: the
    CLI dispatches them itself.
    """

    words: tuple[str, ...]
    summary: str
    parser: Callable[[], argparse.ArgumentParser]
    run: Callable[[str, argparse.Namespace], int] | None = None


BlueprintFactory = Callable[["PluginContext", str], Any]
#: ``route(scope)``: an ASGI handler ``handler(receive, send)`` for an HTTP
#: request the service answers without the Quart app, or None.
ASGIRoute = Callable[[Mapping[str, Any]], Callable[[Any, Any], Awaitable[None]] | None]
ASGIRouteFactory = Callable[["PluginContext", str], ASGIRoute]


@dataclass(frozen=True)
class HTTPService:
    """An HTTP service a plugin serves on the listeners that enable it.

    ``config_keys`` are the listener keys that enable it, plain HTTP first
    (e.g. ``("WebAPIHTTP", "WebAPIHTTPS")``); ``default_path`` applies when
    the config sets no ``Path``; ``blueprint`` builds a Quart blueprint for a
    concrete path (always ending in ``/``). ``asgi_route``, optional, builds
    for the same path a function that claims the requests the service
    answers straight from ASGI (its busiest calls, without Quart's
    per-request machinery); what it leaves goes to the blueprint. Blueprints
    are built on the first request that reaches Quart, so a server that
    answers only ASGI routes never imports Quart; no ASGI lifespan events
    are sent (``before_serving`` functions do not run).
    """

    name: str
    config_keys: Sequence[str]
    default_path: str
    blueprint: BlueprintFactory
    asgi_route: ASGIRouteFactory | None = None


def _system_clock() -> Clock:
    from core.queue.clock import SystemClock

    return SystemClock()


class Metrics:
    """The server's metrics, for plugins: record measurements, add gauges, add sinks.

    A thin typed front over :mod:`core.metrics` (process-wide, as Prometheus
    registries are) so a plugin reaches it through its context.
    """

    def record(self, m: metrics.Measurement) -> None:
        metrics.record(m)

    def add_gauge(self, gauge: metrics.Gauge) -> None:
        metrics.add_gauge(gauge)

    def add_sink(self, sink: metrics.Sink) -> None:
        metrics.add_sink(sink)


@dataclass
class CoreParts:
    """Objects the core's own modules share through the context (not for plugins).

    Typed slots instead of a string-keyed dict: the SMTP connection limits
    read at start-up, the HTTP per-IP connection counter, the event that
    ends SMTP sessions at shutdown, the authentication lookups with their
    answer cache, and the server's shutdown request.
    """

    smtp_limits: ConnectionLimits | None = None
    http_connections: ConnectionCounter | None = None
    smtp_shutdown: trio.Event | None = None
    mailauth_lookup: ResolverLookup | None = None
    request_shutdown: Callable[[], None] | None = None


@dataclass
class PluginContext:
    """The running server as plugins see it.

    Plugins use the core only through this object and hooks: the config,
    the store, the queue operations, the clock, the DNS resolver, the
    failed-login limiter, the metrics, their own settings
    (:meth:`plugin_settings`), the hook dispatcher, and services that one
    plugin offers another, registered and found by type
    (:meth:`provide` / :meth:`service`, e.g. ``SuppressionProvider``).
    """

    config: Config
    store: Store
    hooks: HookDispatcher
    # Kept in the core: the mode flag ``moxtrio localserve`` starts the server
    # with (Server(localserve=True)), named after mox's command. The localserve
    # plugin is loaded like any other and acts only when it is set; other
    # plugins read it too (webhooks to any address, the mail viewer on by
    # default). No hook can replace it: it says which command started the
    # server, before any plugin runs.
    localserve: bool = False
    #: The server's one failed-login limiter: every protocol that checks
    #: passwords (SMTP AUTH, webapi, web logins) checks and feeds it.
    login_limiter: LoginLimiter = field(default_factory=LoginLimiter)
    #: "Now" for the queue, webhooks and suppression (tests put a FakeClock here).
    clock: Clock = field(default_factory=_system_clock)
    metrics: Metrics = field(default_factory=Metrics)
    #: This process as a node of the cluster sharing the store: its id for
    #: leases, and the wake-ups that reach every node (``wakeups.notify``).
    cluster: ClusterNode = field(default_factory=ClusterNode)
    core: CoreParts = field(default_factory=CoreParts)
    #: Plugin settings given by the embedder (a plugin's command-line flags,
    #: tests), by plugin name; they win over the settings file's keys.
    settings_overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    _queue: QueueService | None = field(default=None, repr=False)
    _resolver: Resolver | None = field(default=None, repr=False)
    _services: dict[type, Any] = field(default_factory=dict, repr=False)
    _settings: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _settings_loaded: bool = field(default=False, repr=False)

    def __post_init__(self) -> None:
        # In-transaction hooks called without an explicit ctx get this one.
        self.hooks.context = self

    @property
    def queue(self) -> QueueService:
        """The queue operations (add, list, hold, retry, drop...); set before plugins configure."""
        if self._queue is None:
            raise RuntimeError("the queue is not set up in this context")
        return self._queue

    @queue.setter
    def queue(self, queue: QueueService) -> None:
        self._queue = queue

    @property
    def has_queue(self) -> bool:
        return self._queue is not None

    @property
    def resolver(self) -> Resolver:
        """The DNS resolver for delivery and authentication (the system's unless given)."""
        if self._resolver is None:
            from core.dns import Resolver

            self._resolver = Resolver()
        return self._resolver

    @resolver.setter
    def resolver(self, resolver: Resolver) -> None:
        self._resolver = resolver

    def provide(self, kind: type[T], impl: T) -> None:
        """Register ``impl`` as this server's ``kind`` (a class or a Protocol).

        A plugin offers a service to other plugins under a Protocol of the
        public API (``SuppressionProvider``), and keeps its own per-server
        objects under its own classes, so nothing lives in module globals.
        """
        self._services[kind] = impl

    def service(self, kind: type[T]) -> T | None:
        """The object registered as ``kind``, or None when no plugin provides it."""
        return self._services.get(kind)

    def require(self, kind: type[T]) -> T:
        """The object registered as ``kind``; a plugin's own state it set up in configure."""
        found: T | None = self._services.get(kind)
        if found is None:
            raise RuntimeError(f"nothing registered as {kind.__name__} in this server")
        return found

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """Settings of plugin ``name`` from ``<config dir>/plugins/<name>.yaml``.

        mox.conf has no room for third-party settings, and adding keys would
        make it invalid for mox; a YAML file per plugin beside it keeps mox's
        files untouched. Returns ``{}`` when the file does not exist. The
        server reads every settings file in a worker thread before plugins
        configure (:meth:`load_settings`), so this never touches the disk on
        a running server.
        """
        settings = self._settings.get(name)
        if settings is None:
            # Contexts built outside a server (tools, tests) read on first use.
            loaded = self._settings_loaded
            settings = {} if loaded else read_settings_file(settings_path(self.config.dir, name))
            self._settings[name] = settings
        return {**settings, **self.settings_overrides.get(name, {})}

    async def load_settings(self) -> None:
        """Read every ``plugins/*.yaml`` in a worker thread (start-up; errors stop it)."""
        import trio

        self._settings.update(await trio.to_thread.run_sync(read_all_settings, self.config.dir))
        self._settings_loaded = True

    async def refresh_settings(self) -> None:
        """Re-read the settings files in a worker thread (the running server, once a second).

        Settings a plugin parsed at configure time stay as they were; those it
        reads per use (the account mail viewer) follow the file. A broken
        edit keeps the previous settings and is logged.
        """
        import logging

        import trio

        try:
            settings = await trio.to_thread.run_sync(read_all_settings, self.config.dir)
        except (PluginConfigError, OSError) as exc:
            logging.getLogger("moxtrio.config").error("plugin settings: keeping previous version: %s", exc)
            return
        self._settings = settings


def read_all_settings(config_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Every settings file in ``<config dir>/plugins/``, by plugin name."""
    d = Path(config_dir) / "plugins"
    if not d.is_dir():
        return {}
    return {p.stem: read_settings_file(p) for p in sorted(d.glob("*.yaml"))}


def settings_path(config_dir: str | Path, name: str) -> Path:
    """Where the settings of plugin (or core area) ``name`` live."""
    return Path(config_dir) / "plugins" / f"{name}.yaml"


def read_settings_file(path: Path) -> dict[str, Any]:
    """A settings YAML file as a mapping; ``{}`` when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    import yaml
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
