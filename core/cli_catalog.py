"""What the ``moxtrio`` command offers, for ``help``, ``-h`` and ``plugins``.

Local commands (``serve``, ``config test``...) run in the ``moxtrio``
process and are described by their argparse parsers; plugins add local
commands under their own names (``moxtrio_cli_commands``). Control
commands (``queue list``, ``ping``...) run in the server; their list comes
from the same places the server takes them from (the core's commands and
the plugins' ``moxtrio_ctl_commands`` hook, called without a server), so
``moxtrio help`` works without a config and without a running server.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable

from core.plugin_api import CliCommand, CtlCommand

log = logging.getLogger("moxtrio.cli")


class Parser(argparse.ArgumentParser):
    """argparse that accepts mox's single-dash long flags and ``-help``."""

    def __init__(self, prog: str, description: str, help_action: str = "help") -> None:
        super().__init__(
            prog=prog,
            description=description,
            add_help=False,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        self.add_argument("-h", "-help", "--help", action=help_action, help="show this help and exit")


def serve_parser() -> Parser:
    return Parser(
        "moxtrio serve",
        "Run the server configured by -config (default config/mox.conf, or $MOXCONF).\n"
        "Stops cleanly on SIGTERM or SIGINT, or with \"moxtrio stop\".",
    )


def config_test_parser() -> Parser:
    p = Parser(
        "moxtrio config test",
        "Check mox.conf, domains.conf, plugins and their settings with the same checks\n"
        "the server makes when it starts. Prints file:line: message for each problem.",
    )
    p.add_argument(
        "-config", default=None, metavar="PATH", help="mox.conf to check (default: the global -config)"
    )
    return p


def version_parser() -> Parser:
    return Parser("moxtrio version", "Print moxtrio's version.")


def help_parser() -> Parser:
    p = Parser("moxtrio help", "Describe moxtrio's commands, or one command and its flags.")
    p.add_argument("command", nargs="*", help="the command to describe (e.g. \"queue list\")")
    return p


def plugins_parser() -> Parser:
    return Parser(
        "moxtrio plugins",
        "List the plugins -config loads (mox.conf Plugins, else all first-party plugins), their\n"
        "versions and the hooks each one implements. Needs no running server.",
    )


def db_parser() -> Parser:
    return Parser(
        "moxtrio db",
        "The store's database (plugins/store.yaml: SQLite in the data directory, or PostgreSQL).\n"
        "\n"
        "  moxtrio db migrate   apply pending schema migrations of the core and the configured\n"
        "                       plugins; on PostgreSQL one process migrates, others wait for it\n"
        "  moxtrio db status    backend, schema versions per owner, pending migrations, and the\n"
        "                       delivery and webhook leases each node holds; changes nothing\n"
        "  moxtrio db copy -to URL | -to-file PATH | -to-env NAME\n"
        "                       copy this SQLite installation's store (rows and message bodies)\n"
        "                       into an empty PostgreSQL database; stop the server first\n"
        "\n"
        "Each works on the database -config names, with or without a running server.\n"
        "Errors go to stderr with exit status 1.",
    )


def db_migrate_parser() -> Parser:
    return Parser(
        "moxtrio db migrate",
        "Apply the pending schema migrations (core and configured plugins) to the database\n"
        "-config names. On PostgreSQL the migration lock makes concurrent runs (and starting\n"
        "nodes) wait for the one that migrates. Prints each migration applied.",
    )


def db_status_parser() -> Parser:
    return Parser(
        "moxtrio db status",
        "Show the backend, the schema version of each owner (core and plugins), the\n"
        "migrations this code would still apply, and per node the queue deliveries and\n"
        "webhooks it holds a lease on. Changes nothing.",
    )


def db_copy_parser() -> Parser:
    p = Parser(
        "moxtrio db copy",
        "Copy the SQLite store of -config's installation (every table, message bodies\n"
        "included) into an empty PostgreSQL database, in one transaction: a failure leaves\n"
        "the target empty. The target must have no moxtrio tables; the schema is created at\n"
        "this code's versions (the SQLite store is migrated first, as a server start would).\n"
        "Stop the server before copying; then point plugins/store.yaml at the new database.",
    )
    p.add_argument("-to", default="", metavar="URL", help="postgresql:// URL of the empty target database")
    p.add_argument("-to-file", dest="to_file", default="", metavar="PATH", help="file holding the URL")
    p.add_argument("-to-env", dest="to_env", default="", metavar="NAME", help="environment variable holding the URL")
    return p


#: The core's local commands; ``cli.main`` dispatches them by their words.
LOCAL_COMMANDS: list[CliCommand] = [
    CliCommand(("serve",), "run the server for -config", serve_parser),
    CliCommand(("config", "test"), "check mox.conf, domains.conf and plugins", config_test_parser),
    CliCommand(("plugins",), "list plugins, versions and hooks", plugins_parser),
    CliCommand(("db",), "the store's database: migrate, status, copy", db_parser),
    CliCommand(("db", "migrate"), "apply pending schema migrations", db_migrate_parser),
    CliCommand(("db", "status"), "schema versions, pending migrations, leases", db_status_parser),
    CliCommand(("db", "copy"), "copy a SQLite store into an empty PostgreSQL database", db_copy_parser),
    CliCommand(("version",), "print the version", version_parser),
    CliCommand(("help",), "describe commands: moxtrio help COMMAND", help_parser),
]


def global_parser() -> Parser:
    # -h here shows the whole command list (moxtrio help), not just these flags.
    p = Parser(
        "moxtrio",
        "moxtrio: a mail server with mox's config files, webapi and webhooks.",
        help_action="store_true",
    )
    p.add_argument(
        "-config",
        default=None,
        metavar="PATH",
        help="mox.conf to use (default $MOXCONF, else config/mox.conf)",
    )
    p.add_argument(
        "-loglevel",
        default="",
        metavar="LEVEL",
        help="override mox.conf LogLevel: error, warn, info, debug, trace, traceauth, tracedata",
    )
    p.add_argument(
        "-pedantic", action="store_true", help="accepted for compatibility with mox; no effect"
    )
    p.add_argument("-version", "--version", action="store_true", help="print the version and exit")
    return p


def find_local(
    words: list[str], commands: Iterable[CliCommand] = LOCAL_COMMANDS
) -> tuple[CliCommand | None, list[str]]:
    """The local command (of ``commands``) at the start of ``words`` and the rest.

    Local commands take only flags after their words, so a further plain word
    makes it a control command sharing the first word (a plugin may offer
    ``NAME -flag`` here and ``NAME retry-now`` in the running server).
    """
    for cmd in sorted(commands, key=lambda c: -len(c.words)):
        if tuple(words[: len(cmd.words)]) == cmd.words:
            rest = words[len(cmd.words) :]
            if cmd.words != ("help",) and rest and not rest[0].startswith("-"):
                return None, words
            return cmd, rest
    return None, words


def control_commands(plugins: list[str] | None) -> list[CtlCommand]:
    """The server's control commands, as the server with these plugins offers them.

    Plugins' command hooks are called without a server (their handlers only
    run in the server). A plugin that cannot describe its commands this way
    is skipped with a log line: help must not fail because of one plugin.
    """
    from core.builtin_commands import builtin_commands
    from core.dispatch import HookDispatcher, HookFailed
    from core.plugins import create_manager
    from core.queue.ctl import queue_commands

    commands = builtin_commands() + queue_commands(None)  # type: ignore[arg-type]
    pm = create_manager(plugins)
    try:
        commands += HookDispatcher(pm).setup("moxtrio_ctl_commands", ctx=None)
    except HookFailed as exc:
        log.warning("plugin %s cannot list its commands without a server: %s", exc.plugin, exc.cause)
    return commands


def plugin_cli_commands(names: Iterable[str] | None = None) -> list[CliCommand]:
    """Local commands that installed plugins add (``moxtrio_cli_commands``).

    ``names``: only these plugins, by entry-point name (names that are no
    installed plugin are passed over); None: every installed plugin. Each
    plugin is loaded alone, so one that fails to load or to answer costs
    only its own commands (with a log line), and a command named other
    than its plugin is ignored.
    """
    from core.dispatch import HookDispatcher, HookFailed
    from core.plugin_api import PluginLoadError
    from core.plugins import available_plugins, create_manager

    available = available_plugins()
    out: list[CliCommand] = []
    for name in sorted(available) if names is None else [n for n in names if n in available]:
        try:
            found = HookDispatcher(create_manager([name])).setup("moxtrio_cli_commands")
        except (PluginLoadError, HookFailed) as exc:
            log.warning("plugin %s cannot list its commands: %s", name, exc)
            continue
        for cmd in found:
            if cmd.words != (name,):
                log.warning("plugin %s: command %r ignored: a plugin's command is its name",
                            name, " ".join(cmd.words))
                continue
            out.append(cmd)
    return out


def usage_text(control: list[CtlCommand], local: Iterable[CliCommand] = LOCAL_COMMANDS) -> str:
    """``moxtrio help``: every command with one line about it."""
    lines = [
        "usage: moxtrio [-config PATH] [-loglevel LEVEL] COMMAND [ARGS...]",
        "",
        "commands run here:",
    ]
    local = list(local)
    for cmd in local:
        lines.append(f"  {' '.join(cmd.words):<32}{cmd.summary}")
    lines += ["", "commands run by the server (through its control socket):"]
    for c in sorted(control, key=lambda c: c.path):
        if find_local(list(c.path), local)[0] is None:  # `version` runs here, not in the server
            lines.append(f"  {' '.join(c.path):<32}{c.help}")
    lines += [
        "",
        "global flags:",
        *_flag_lines(global_parser()),
        "",
        'run "moxtrio help COMMAND" or "moxtrio COMMAND -h" for a command\'s flags.',
    ]
    return "\n".join(lines) + "\n"


def _flag_lines(p: argparse.ArgumentParser) -> list[str]:
    out = []
    for action in p._actions:
        if not action.option_strings:
            continue
        flag = action.option_strings[0]
        if action.metavar:
            flag += f" {action.metavar}"
        out.append(f"  {flag:<32}{action.help or ''}")
    return out


def command_help(
    words: list[str], control: list[CtlCommand], commands: Iterable[CliCommand] = LOCAL_COMMANDS
) -> str | None:
    """Help for one command (local or control), or None when there is none."""
    local, rest = find_local(words, commands)
    if local is not None and not rest:
        return local.parser().format_help()
    from core.ctl import find_command

    cmd, _args = find_command(control, words)
    if cmd is not None:
        text = f"usage: moxtrio {' '.join(cmd.path)} {cmd.usage}".rstrip() + "\n\n"
        text += (cmd.help or "") + "\n"
        text += "Runs in the server (through its control socket): the server must be running.\n"
        if cmd.flags:
            text += "\nflags:\n" + "".join(f"  {f:<32}{h}\n" for f, h in cmd.flags)
        return text
    below = [c for c in control if list(c.path[: len(words)]) == words]
    if below:
        return "".join(f"  {' '.join(c.path):<32}{c.help}\n" for c in sorted(below, key=lambda c: c.path))
    return None


def wants_help(args: list[str]) -> bool:
    return any(a in ("-h", "-help", "--help") for a in args)

