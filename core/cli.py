"""The ``moxtrio`` command, with mox's flags and subcommands.

``moxtrio [-config PATH] [-loglevel L] serve`` runs a server;
``moxtrio localserve [-dir DIR] [-ip IP] [-initonly]`` runs a local
development server; ``moxtrio config test [-config PATH]`` checks a config;
every other command (``queue list``, ``queue holdrules add``, ...) is sent to
the running server over its control socket, so scripts written for ``mox``
work with the binary name changed.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

import trio

from core import ctl
from core.filemodes import restrict_umask
from core.version import VERSION

log = logging.getLogger("moxtrio")

LOG_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG - 1,
    "traceauth": logging.DEBUG - 2,
    "tracedata": logging.DEBUG - 3,
}


def setup_logging(level: str) -> None:
    logging.basicConfig(
        level=LOG_LEVELS.get(level.lower(), logging.INFO),
        format="%(asctime)s l=%(levelname)s pkg=%(name)s m=%(message)s",
        stream=sys.stderr,
        force=True,
    )


def default_config_path() -> str:
    return os.environ.get("MOXCONF", "config/mox.conf")


def default_localserve_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mox-localserve"


def _load_config(path: str) -> Any:
    from core.config import load_config

    return load_config(path)


def _global_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="moxtrio", add_help=False)
    p.add_argument("-config", default=None)
    p.add_argument("-loglevel", default="")
    p.add_argument("-pedantic", action="store_true")
    p.add_argument("-h", "-help", "--help", action="store_true", dest="help")
    return p


USAGE = """usage: moxtrio [-config PATH] [-loglevel LEVEL] COMMAND ...

commands:
  serve                               run the server for -config
  localserve [-dir DIR] [-ip IP] [-initonly]
                                      run a local development server
  config test [-config PATH]          check mox.conf and domains.conf
  version                             print the version
  setaccountpassword ACCOUNT          set a password (read from stdin)
  queue ...                           queue commands (on the running server)
  ping | stop                         talk to the running server
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Before anything is written (localserve writes its config first).
    restrict_umask()
    gp = _global_parser()
    # parse_known_args would also swallow flags meant for the subcommand
    # (`config test -config X`, `localserve -dir`): split at the command word.
    command_at = next((i for i, a in enumerate(argv) if not a.startswith("-") and _is_command_word(argv, i)), len(argv))
    opts, unknown = gp.parse_known_args(argv[:command_at])
    rest = argv[command_at:]
    if unknown:
        print(f"moxtrio: unknown flag {unknown[0]}\n{USAGE}", file=sys.stderr)
        return 2
    if opts.help or not rest:
        print(USAGE, file=sys.stderr if not opts.help else sys.stdout)
        return 0 if opts.help else 2
    cmd, args = rest[0], rest[1:]
    config_path = opts.config or default_config_path()
    try:
        if cmd == "version":
            print(f"moxtrio {VERSION}")
            return 0
        if cmd == "serve":
            return _cmd_serve(config_path, opts.loglevel, args)
        if cmd == "localserve":
            return _cmd_localserve(opts.loglevel, args)
        if cmd == "config" and args[:1] == ["test"]:
            return _cmd_config_test(config_path, args[1:])
        return _cmd_ctl(config_path, rest)
    except KeyboardInterrupt:
        return 130


def _is_command_word(argv: list[str], i: int) -> bool:
    """True when argv[i] is not the value of a preceding global flag."""
    return not (i > 0 and argv[i - 1] in ("-config", "-loglevel"))


def _cmd_config_test(config_path: str, args: list[str]) -> int:
    p = argparse.ArgumentParser(prog="moxtrio config test")
    p.add_argument("-config", default=None)
    a = p.parse_args(args)
    path = a.config or config_path
    from core.config import ConfigError

    try:
        _load_config(path)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    print("config OK")
    return 0


def _cmd_serve(config_path: str, loglevel: str, args: list[str]) -> int:
    from core.config import ConfigError

    if args:
        print(f"moxtrio serve: unexpected arguments {args}", file=sys.stderr)
        return 2
    try:
        config = _load_config(config_path)
    except (ConfigError, OSError) as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 1
    setup_logging(loglevel or config.static.LogLevel or "info")
    return run_server(config, localserve=False)


def run_server(
    config: Any, *, localserve: bool, banner: str = "", services: dict[str, Any] | None = None
) -> int:
    """Run a server until SIGTERM/SIGINT; return the process exit status."""
    from core.plugin_api import PluginConfigError, PluginLoadError
    from core.runtime import Server

    server = Server(config, localserve=localserve, services=services)

    async def _run() -> None:
        async with trio.open_nursery() as nursery:

            async def _serve(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
                await server.run(task_status=task_status)
                nursery.cancel_scope.cancel()

            nursery.start_soon(_watch_signals, server)
            await nursery.start(_serve)
            if banner:
                print(banner, flush=True)

    failed: list[BaseException] = []
    try:
        trio.run(_run)
    except* (PluginLoadError, PluginConfigError, ctl.CtlError, OSError) as group:
        # Start-up problems an administrator fixes (a bad setting, a port in
        # use, a second server on the same data dir): one clear line each.
        failed.extend(_leaves(group))
    for exc in failed:
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


def _cmd_localserve(loglevel: str, args: list[str]) -> int:
    from core.config import ConfigError
    from core.localserve_init import write_localserve_config

    p = argparse.ArgumentParser(prog="moxtrio localserve")
    p.add_argument("-dir", default=None)
    p.add_argument("-ip", default="")
    p.add_argument("-initonly", action="store_true")
    # moxtrio extension: retries happen within a second instead of after minutes.
    p.add_argument("-fast-retries", dest="fast_retries", action="store_true")
    a = p.parse_args(args)
    directory = Path(a.dir) if a.dir else default_localserve_dir()
    setup_logging(loglevel or "info")
    if a.initonly:
        if directory.exists():
            log.warning("directory for configuration files already exists, continuing")
        write_localserve_config(directory, a.ip or None)
        print(f"configuration written to {directory}")
        return 0
    if not directory.exists():
        try:
            write_localserve_config(directory, a.ip or None)
        except Exception:
            _remove_tree(directory)
            raise
        log.info("new localserve config written to %s", directory)
    elif a.ip:
        print("moxtrio: can only use -ip when writing a new config file", file=sys.stderr)
        return 1
    try:
        config = _load_config(str(directory / "mox.conf"))
    except (ConfigError, OSError) as exc:
        print(
            f"moxtrio: loading localserve config: {exc}\n"
            f"(remove {directory} to start with a new config)",
            file=sys.stderr,
        )
        return 1
    setup_logging(loglevel or config.static.LogLevel or "debug")
    return run_server(
        config, localserve=True, banner=localserve_banner(config, directory),
        services={"localserve_fast_retries": True} if a.fast_retries else None,
    )


def _remove_tree(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)


def localserve_banner(config: Any, directory: Path) -> str:
    return f"""moxtrio {VERSION} localserve, config and data in {directory}
default user: mox@localhost (or any mox+anything@localhost), password: moxmoxmox
ports are the standard ones + 1000:
 smtp://localhost:1025                             receive email (SMTP delivery)
smtps://mox%40localhost:moxmoxmox@localhost:1465   submission with TLS
 smtp://mox%40localhost:moxmoxmox@localhost:1587   submission without TLS
 http://localhost:1080/webapi/                     webapi (methods at /webapi/v0/<Method>)
self-signed certificate: {directory / 'localhost.crt'}
recipient localparts that simulate failures: ending in temperror, permerror,
timeout or a code 400-600 (e.g. user550); starting with mailfrom or rcptto
fails at that command instead of at DATA.
"""


def _cmd_ctl(config_path: str, argv: list[str]) -> int:
    from core.config import ConfigError

    try:
        config = _load_config(config_path)
    except (ConfigError, OSError) as exc:
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
        print(f"moxtrio: {exc}", file=sys.stderr)
        return 1
    # A failing command's text is its error: on stderr, as mox prints it.
    (sys.stdout if result.exit_code == 0 else sys.stderr).write(result.output)
    return result.exit_code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
