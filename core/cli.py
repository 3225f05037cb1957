"""The ``moxtrio`` command, with mox's flags and subcommands.

``moxtrio [-config PATH] [-loglevel L] serve`` runs a server;
``moxtrio config test [-config PATH]`` checks a config; a plugin's own
local commands start with its name (``moxtrio NAME -flags``: the local
development server is one); every other command (``queue list``, ``queue
holdrules add``, ...) is sent to
the running server over its control socket, so scripts written for ``mox``
work with the binary name changed. ``moxtrio help`` describes every command
without needing a config or a running server.
"""

from __future__ import annotations

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
    # Before anything is written (a plugin's command may write a config first).
    restrict_umask()
    gp = catalog.global_parser()
    # parse_known_args would also swallow flags meant for the subcommand
    # (`config test -config X`, `NAME -dir` of a plugin): split at the command word.
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
    if local is None and not (rest[1:] and not rest[1].startswith("-")):
        # A plugin's command is its name and flags; a further word makes it a control command.
        local, args = catalog.find_local(rest, catalog.plugin_cli_commands(rest[:1]))
    try:
        if local is None:
            return _cmd_ctl(config_path, rest)
        parsed = local.parser().parse_args(args)
        if local.run is not None:
            # A plugin's command may run a server (the development server): start-up runs
            # with the collector paused, as for serve (see core.gcpolicy).
            with gcpolicy.paused():
                return local.run(opts.loglevel, parsed)
        name = " ".join(local.words)
        if name == "help":
            return _cmd_help(config_path, parsed.command)
        if name == "version":
            print(f"moxtrio {VERSION}")
            return 0
        if name == "serve":
            return _cmd_serve(config_path, opts.loglevel)
        if name == "config test":
            return _cmd_config_test(parsed.config or config_path)
        if name == "plugins":
            return _cmd_plugins(config_path)
        if name.startswith("db"):
            return _cmd_db(config_path, name, parsed)
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


def _local_commands() -> list[Any]:
    """The core's local commands and those of every installed plugin."""
    return catalog.LOCAL_COMMANDS + catalog.plugin_cli_commands()


def _usage(config_path: str) -> str:
    return catalog.usage_text(_control_commands(config_path), _local_commands())


def _cmd_help(config_path: str, words: list[str]) -> int:
    if not words:
        sys.stdout.write(_usage(config_path))
        return 0
    text = catalog.command_help(words, _control_commands(config_path), _local_commands())
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


def _cmd_db(config_path: str, name: str, a: Any) -> int:
    from core import db_cli

    if name == "db migrate":
        return db_cli.cmd_migrate(config_path)
    if name == "db status":
        return db_cli.cmd_status(config_path)
    if name == "db copy":
        return db_cli.cmd_copy(config_path, a.to, a.to_file, a.to_env)
    sys.stderr.write(catalog.db_parser().format_help())
    return 2


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
    return run_server(config)


def run_server(
    config: Any, *, localserve: bool = False,  # kept: Server's mode switch, see below
    banner: Callable[[Any], str] | None = None,
    settings: dict[str, dict[str, Any]] | None = None,
) -> int:
    """Run a server until SIGTERM/SIGINT; return the process exit status.

    ``banner`` is printed once the listeners are bound, from what was bound.
    ``settings`` are plugin settings that win over the files (a command's flags).
    """
    from core.config import ConfigError
    from core.dispatch import HookFailed
    from core.plugin_api import PluginConfigError, PluginLoadError
    from core.runtime import Server

    # Kept in the core: the mode switch of Server (see PluginContext.localserve),
    # passed on for the localserve plugin's command, which runs its server here.
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
