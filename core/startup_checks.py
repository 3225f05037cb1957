"""The checks a server makes before it serves, shared with ``moxtrio config test``.

``config test`` must refuse exactly what ``serve`` refuses, so both use
these functions: the config files (with their log levels), the plugins
named in mox.conf (and the hooks they implement), every plugin settings
file, listener TLS files, and a dry run of the plugins' start-up hooks
against a throw-away store. Problems are reported as ``file:line: message``.
Nothing here writes to the data directory.
"""

from __future__ import annotations

import socket
import tempfile
from pathlib import Path
from typing import Any

import trio
import yaml

from core.config import ConfigError, load_config, sconf
from core.plugin_api import PluginConfigError, PluginLoadError


def plugin_error(config: Any, exc: PluginLoadError) -> ConfigError:
    """A plugin that cannot load, pointed at mox.conf's Plugins line."""
    return ConfigError(str(config.path), sconf.line_of(config.static, "Plugins"), str(exc), "Plugins")


def check_settings_files(config: Any) -> list[str]:
    """Every ``<config dir>/plugins/*.yaml`` parses as a mapping (file:line on errors)."""
    problems = []
    for path in sorted((Path(config.dir) / "plugins").glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 0
            problem = getattr(exc, "problem", None) or str(exc)
            problems.append(str(ConfigError(str(path), line, f"invalid yaml: {problem}")))
            continue
        except OSError as exc:
            problems.append(f"{path}: cannot read: {exc.strerror or exc}")
            continue
        if data is not None and not isinstance(data, dict):
            problems.append(f"{path}:1: expected a mapping of settings")
    return problems


async def database_settings(config: Any) -> Any:
    """The store's :class:`~core.store.settings.DatabaseSettings` from ``plugins/store.yaml``.

    An unusable section stops start-up with a PluginConfigError naming it.
    """
    from core.store.settings import DatabaseSettingsError, load_database_settings

    try:
        return await trio.to_thread.run_sync(load_database_settings, config.dir)
    except DatabaseSettingsError as exc:
        raise PluginConfigError(str(exc)) from exc


def check_database_settings(config: Any) -> list[str]:
    """``config test``: store.yaml's Database section is usable (URL source readable)."""
    from core.store.settings import DatabaseSettingsError, load_database_settings

    try:
        load_database_settings(config.dir)
    except DatabaseSettingsError as exc:
        return [str(exc)]
    return []


def check_tls_files(config: Any) -> None:
    """Listener certificates and keys exist and load (ConfigError naming the listener)."""
    from core.tls import listener_ssl_context

    for name, listener in sorted(config.static.Listeners.items()):
        tls = getattr(listener, "TLS", None)
        if tls is None:
            continue
        for kc in tls.KeyCerts:
            for key in ("CertFile", "KeyFile"):
                path = config.resolve_path(getattr(kc, key))
                if not path.is_file():
                    raise ConfigError(
                        str(config.path),
                        sconf.line_of(kc, key),
                        f'listener "{name}": TLS {key} {path}: no such file',
                        key,
                    )
        try:
            listener_ssl_context(config, name)
        except (OSError, ValueError) as exc:
            raise ConfigError(
                str(config.path), sconf.line_of(tls), f'listener "{name}": cannot load TLS certificate: {exc}'
            ) from exc


def check_ports_free(config: Any, services: list[Any]) -> None:
    """Fail early, naming address and port, when a listener's port is taken.

    Bound and released at once: the real listeners bind moments later. This
    runs before anything is written, so a server that cannot listen leaves
    a new data directory untouched.
    """
    from core.ctl import socket_path
    from core.http import plan_bindings
    from core.smtp.listeners import SERVICES

    addresses: list[tuple[str, int, str]] = []
    for name, listener in sorted(config.static.Listeners.items()):
        for key, kind in SERVICES:
            if listener.enabled(key):
                addresses += [(ip, listener.port(key), f"{kind}, listener {name}") for ip in listener.IPs]
    for b in plan_bindings(config, services):
        mounted = ", ".join(s.name for s, _ in b.mounts)
        addresses.append((b.ip, b.port, f"{'https' if b.tls else 'http'} {mounted}, listener {b.listener}"))
    for ip, port, what in addresses:
        family = socket.AF_INET6 if ":" in ip else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((ip, port))
            except OSError as exc:
                host = f"[{ip}]" if ":" in ip else ip
                msg = f"cannot listen on {host}:{port} ({what}): {exc.strerror or exc}"
                if _server_answers(socket_path(Path(config.data_dir))):
                    msg += f"; another moxtrio server is running with data directory {config.data_dir}"
                err = OSError(msg)
                err.errno = exc.errno
                raise err from None


def check_no_other_server(config: Any) -> None:
    """Refuse to open a data directory another live server is using."""
    from core.ctl import CtlError, socket_path

    path = socket_path(Path(config.data_dir))
    if path.exists() and _server_answers(path):
        raise CtlError(
            f"another moxtrio server is running with data directory {config.data_dir} "
            f"(its control socket {path} answers)"
        )


def _server_answers(path: Path) -> bool:
    """Whether a moxtrio (or mox) control socket answers at ``path``."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(3)
        try:
            s.connect(str(path))
        except OSError:
            return False
    return True


def preflight(config: Any, hooks: Any) -> None:
    """What a server checks before it writes anything: TLS files, free ports."""
    from core.dispatch import HookFailed

    check_tls_files(config)
    check_no_other_server(config)
    try:
        # Services are declared without a server; a plugin that needs one to
        # declare its services is left to the real bind.
        services = hooks.setup("moxtrio_http_services", ctx=None)
    except HookFailed:
        services = []
    check_ports_free(config, services)


async def dry_run(config: Any) -> None:
    """Run the plugins' start-up hooks against a throw-away store.

    The same code path as a starting server up to the listeners, so a
    plugin's ``PluginConfigError`` (a bad setting) is found by ``config test``
    too. The store lives in a temporary directory that is removed after.
    """
    from core.dispatch import HookDispatcher, HookFailed
    from core.plugin_api import PluginContext
    from core.plugins import create_manager
    from core.queue.service import QueueService
    from core.smtp.listeners import check_settings as check_smtp_settings
    from core.store import Store

    try:
        pm = create_manager(config.plugins)
    except PluginLoadError as exc:
        raise plugin_error(config, exc) from exc
    hooks = HookDispatcher(pm)
    with tempfile.TemporaryDirectory(prefix="moxtrio-check-") as tmp:
        store = await Store.open(Path(tmp), hooks.setup("moxtrio_migrations"))
        try:
            ctx = PluginContext(config=config, store=store, hooks=hooks)
            await ctx.load_settings()
            check_smtp_settings(ctx)
            ctx.queue = QueueService(ctx)
            try:
                ctx.hooks.setup("moxtrio_configure", ctx=ctx)
                ctx.hooks.setup("moxtrio_http_services", ctx=ctx)
                ctx.hooks.setup("moxtrio_ctl_commands", ctx=ctx)
            except HookFailed as exc:
                raise PluginConfigError(f"plugin {exc.plugin}: {exc.cause}") from exc
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()


def check_config(path: str) -> list[str]:
    """``moxtrio config test``: every problem that would stop ``serve``, one line each."""
    try:
        config = load_config(path)
    except ConfigError as exc:
        return [str(exc)]
    problems = check_settings_files(config)
    problems += check_database_settings(config)
    try:
        check_tls_files(config)
    except ConfigError as exc:
        problems.append(str(exc))
    if problems:
        return problems
    try:
        trio.run(dry_run, config)
    except ConfigError as exc:
        problems.append(str(exc))
    except PluginConfigError as exc:
        problems.append(str(exc))
    return problems
