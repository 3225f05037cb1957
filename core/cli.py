"""The ``moxtrio`` command, with mox's flags and subcommands.

``moxtrio [-config PATH] [-loglevel L] serve`` runs a server;
``moxtrio localserve [-dir DIR] [-ip IP] [-initonly] [-fast-retries]`` runs a local
development server; ``moxtrio config test [-config PATH]`` checks a config;
every other command (``queue list``, ``queue holdrules add``, ...) is sent to
the running server over its control socket, so scripts written for ``mox``
work with the binary name changed. ``moxtrio help`` describes every command
without needing a config or a running server.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import trio

from core import cli_catalog as catalog
from core import ctl, gcpolicy
from core.filemodes import restrict_umask
from core.version import VERSION

log = logging.getLogger("moxtrio")


def setup_logging(level: str, config: Any = None) -> None:
    """mox-style log lines at ``level`` with the config's ``PackageLogLevels``."""
    from core import mlog

    packages = dict(config.static.PackageLogLevels) if config is not None else {}
    mlog.configure(level or "info", packages)


def default_config_path() -> str:
    return os.environ.get("MOXCONF", "config/mox.conf")


def default_localserve_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mox-localserve"


def _load_config(path: str) -> Any:
    from core.config import load_config

    return load_config(path)


def _config_or_none(path: str) -> Any:
    """The config for commands that can do without one (help)."""
    from core.config import ConfigError

    try:
        return _load_config(path)
    except (ConfigError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Before anything is written (localserve writes its config first).
    restrict_umask()
    gp = catalog.global_parser()
    # parse_known_args would also swallow flags meant for the subcommand
    # (`config test -config X`, `localserve -dir`): split at the command word.
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-") and _is_command_word(argv, i)), len(argv))
    opts, unknown = gp.parse_known_args(argv[:command_at])
    rest = argv[command_at:]
    config_path = opts.config or default_config_path()
    if unknown:
        print(f'moxtrio: unknown flag {unknown[0]} (run "moxtrio help")', file=sys.stderr)
        return 2
    if opts.loglevel:
        from core.mlog import parse_level

        try:
            parse_level(opts.loglevel)
        except ValueError as exc:
            print(f"moxtrio: -loglevel: {exc}", file=sys.stderr)
            return 2
    if opts.help:
        sys.stdout.write(_usage(config_path))
        return 0
    if opts.version:
        print(f"moxtrio {VERSION}")
        return 0
    if not rest:
        print(_usage(config_path), file=sys.stderr, end="")
        return 2
    local, args = catalog.find_local(rest)
    try:
        if local is None:
            return _cmd_ctl(config_path, rest)
        parsed = local.parser().parse_args(args)
        name = " ".join(local.words)
        if name == "help":
            return _cmd_help(config_path, parsed.command)
        if name == "version":
            print(f"moxtrio {VERSION}")
            return 0
        if name == "serve":
            return _cmd_serve(config_path, opts.loglevel)
        # Kept in the core: the command word and its flags are mox's CLI, parsed
        # before any config (and so any plugin list) exists.
        if name == "localserve":
            return _cmd_localserve(opts.loglevel, parsed)
        if name == "config test":
            return _cmd_config_test(parsed.config or config_path)
        if name == "plugins":
            return _cmd_plugins(config_path)
        raise AssertionError(name)
    except KeyboardInterrupt:
        return 130


def _is_command_word(argv: list[str], i: int) -> bool:
    """True when argv[i] is not the value of a preceding global flag."""
    return not (i > 0 and argv[i - 1] in ("-config", "-loglevel"))


def _control_commands(config_path: str) -> list[Any]:
    """The control commands of the server -config would run (first-party without one)."""
    from core.plugin_api import PluginLoadError

    config = _config_or_none(config_path)
    try:
        return catalog.control_commands(config.plugins if config is not None else None)
    except PluginLoadError:
        return catalog.control_commands(None)


def _usage(config_path: str) -> str:
    return catalog.usage_text(_control_commands(config_path))


def _cmd_help(config_path: str, words: list[str]) -> int:
    if not words:
        sys.stdout.write(_usage(config_path))
        return 0
    text = catalog.command_help(words, _control_commands(config_path))
    if text is None:
        print(f'moxtrio: unknown command "{" ".join(words)}" (run "moxtrio help")', file=sys.stderr)
        return 2
    sys.stdout.write(text)
    return 0


def _cmd_config_test(path: str) -> int:
    from core.startup_checks import check_config

    problems = check_config(path)
    for line in problems:
        print(line, file=sys.stderr)
    if problems:
        return 1
    print("config OK")
    return 0


def _cmd_plugins(config_path: str) -> int:
    from core.config import ConfigError
    from core.plugin_api import PluginLoadError
    from core.plugins import create_manager, describe_plugins

    try:
        config = _load_config(config_path)
        pm = create_manager(config.plugins)
    except (ConfigError, PluginLoadError) as exc:
        print(f"moxtrio: {exc}", file=sys.stderr)
        return 1
    for info in describe_plugins(pm):
        print(f"{info.name} {info.version} ({info.source})")
        print(f"  hooks: {', '.join(info.hooks) or '(none)'}")
    return 0


def _cmd_serve(config_path: str, loglevel: str) -> int:
    with gcpolicy.paused():
        return _serve_command(config_path, loglevel)


def _serve_command(config_path: str, loglevel: str) -> int:
    from core.config import ConfigError

    try:
        config = _load_config(config_path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    setup_logging(loglevel or config.static.LogLevel or "info", config)
    return run_server(config, localserve=False)


def run_server(
    config: Any, *, localserve: bool, banner: Callable[[Any], str] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
) -> int:
    """Run a server until SIGTERM/SIGINT; return the process exit status.

    ``banner`` is printed once the listeners are bound, from what was bound.
    """
    from core.config import ConfigError
    from core.dispatch import HookFailed
    from core.plugin_api import PluginConfigError, PluginLoadError
    from core.runtime import Server

    server = Server(config, localserve=localserve, settings=settings)

    async def _run() -> None:
        async with trio.open_nursery() as nursery:

            async def _serve(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
                await server.run(task_status=task_status)
                nursery.cancel_scope.cancel()

            nursery.start_soon(_watch_signals, server)
            await nursery.start(_serve)
            if banner is not None:
                print(banner(server), flush=True)
            nursery.start_soon(gcpolicy.resume_after_start)

    failed: list[BaseException] = []
    try:
        trio.run(_run)
    except* (PluginLoadError, PluginConfigError, ConfigError, ctl.CtlError, OSError, HookFailed) as group:
        # Start-up problems an administrator fixes (a bad setting, a port in
        # use, a second server on the same data dir): one clear line each.
        failed.extend(_leaves(group))
    for exc in failed:
        if isinstance(exc, HookFailed):
            # A plugin's bug at start-up: its traceback in the log, one line here.
            log.error("plugin failed at start-up", exc_info=exc.__cause__ or exc)
        if isinstance(exc, PluginLoadError):
            # As config test says it: pointing at mox.conf's Plugins line.
            from core.startup_checks import plugin_error

            exc = plugin_error(config, exc)
        print(f"moxtrio: {exc}", file=sys.stderr)
    return 1 if failed else 0


def _leaves(group: BaseException) -> list[BaseException]:
    if isinstance(group, BaseExceptionGroup):
        return [leaf for sub in group.exceptions for leaf in _leaves(sub)]
    return [group]


async def _watch_signals(server: Any) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for _ in signals:
            server.request_shutdown()


def _localserve_init(directory: Path, ip: str | None) -> None:
    """Have the localserve plugin write a new config directory (start-up hook).

    No mox.conf exists yet to list plugins, so the plugin is loaded by its
    entry-point name: ``localserve`` names the plugin this command runs,
    which no hook can say before a plugin is loaded.
    """
    from core.plugins import create_manager

    pm = create_manager(["localserve"])
    if not pm.hook.moxtrio_localserve_init(directory=directory, ip=ip):
        raise RuntimeError("no plugin wrote a localserve config")


def _cmd_localserve(loglevel: str, a: argparse.Namespace) -> int:
    with gcpolicy.paused():
        return _localserve_command(loglevel, a)


def _localserve_command(loglevel: str, a: argparse.Namespace) -> int:
    from core.config import ConfigError

    directory = Path(a.dir) if a.dir else default_localserve_dir()
    setup_logging(loglevel or "info")
    if a.initonly:
        if directory.exists():
            log.warning("directory for configuration files already exists, continuing")
        _localserve_init(directory, a.ip or None)
        print(f"configuration written to {directory}")
        return 0
    created = not directory.exists()
    if created:
        try:
            _localserve_init(directory, a.ip or None)
        except Exception:
            _remove_tree(directory)
            raise
        log.info("new localserve config written to %s", directory)
    elif a.ip:
        print(
            f"moxtrio: can only use -ip when writing a new config file; {directory} exists.\n"
            f"To listen on another IP, remove {directory} (or use another -dir) and start again\n"
            f"with -ip, or change IPs in {directory / 'mox.conf'}.",
            file=sys.stderr,
        )
        return 1
    try:
        config = _load_config(str(directory / "mox.conf"))
    except ConfigError as exc:
        print(
            f"moxtrio: loading localserve config: {exc}\n"
            f"(remove {directory} to start with a new config)",
            file=sys.stderr,
        )
        return 1
    setup_logging(loglevel or config.static.LogLevel or "debug", config)
    status = run_server(
        config, localserve=True, banner=lambda server: localserve_banner(server, directory),
        settings={"localserve": {"fast_retries": True}} if a.fast_retries else None,
    )
    if status != 0 and created and not (directory / "moxtrio.db").exists():
        # A first start that failed (a port in use) leaves nothing behind,
        # so the next attempt may choose another -ip.
        _remove_tree(directory)
    return status


def _remove_tree(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def _url_host(server: Any) -> str:
    """The host the banner advertises: the address the listeners bound."""
    bound = (server.listening.smtp or [""])[0].split(" ", 1)[-1]
    host = bound.rsplit(":", 1)[0]
    return "localhost" if host in ("127.0.0.1", "[::1]", "") else host


# Kept in the core: the banner prints the listeners the server actually bound,
# known only to the runtime after start-up.
def localserve_banner(server: Any, directory: Path) -> str:
    h = _url_host(server)
    return f"""moxtrio {VERSION} localserve, config and data in {directory}
default user: mox@localhost (or any mox+anything@localhost), password: moxmoxmox
ports are the standard ones + 1000:
 smtp://{h}:1025                             receive email (SMTP delivery)
smtps://mox%40localhost:moxmoxmox@{h}:1465   submission with TLS
 smtp://mox%40localhost:moxmoxmox@{h}:1587   submission without TLS
 http://{h}:1080/webapi/                     webapi (methods at /webapi/v0/<Method>)
 http://{h}:1081/metrics                     prometheus metrics
 http://{h}:1080/admin/                      admin interface, password: moxadmin
 http://{h}:1080/account/                    account interface, mox@localhost / moxmoxmox
self-signed certificate: {directory / 'localhost.crt'}
recipient localparts that simulate failures: ending in temperror, permerror,
timeout or a code 400-600 (e.g. user550); starting with mailfrom or rcptto
fails at that command instead of at DATA.
"""


def _cmd_ctl(config_path: str, argv: list[str]) -> int:
    from core.config import ConfigError

    if catalog.wants_help(argv):
        return _cmd_help(config_path, [a for a in argv if not a.startswith("-")])
    try:
        config = _load_config(config_path)
    except ConfigError as exc:
        if ctl.find_command(catalog.control_commands(None), argv)[0] is None:
            print(f'moxtrio: unknown command "{" ".join(argv)}" (run "moxtrio help")', file=sys.stderr)
            return 2
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    stdin = ""
    if argv[:3] == ["queue", "suppress", "import"]:
        stdin = sys.stdin.read()
    elif argv[:1] == ["setaccountpassword"]:
        if sys.stdin.isatty():
            import getpass

            stdin = getpass.getpass("password: ")
        else:
            stdin = sys.stdin.read()
    try:
        result = ctl.call(ctl.socket_path(Path(config.data_dir)), argv, stdin)
    except ctl.CtlError as exc:
        if ctl.find_command(_control_commands(config_path), argv)[0] is None:
            print(f'moxtrio: unknown command "{" ".join(argv)}" (run "moxtrio help")', file=sys.stderr)
            return 2
        print(f"moxtrio: {exc}", file=sys.stderr)
        return 1
    # A failing command's text is its error: on stderr, as mox prints it.
    (sys.stdout if result.exit_code == 0 else sys.stderr).write(result.output)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
