"""``moxtrio localserve``: mox's local development server, as a command of this plugin.

``moxtrio localserve [-dir DIR] [-ip IP] [-initonly] [-fast-retries]``
writes a config on a new ``-dir`` (what ``mox localserve`` writes) and runs
a server on it with this plugin active; ``-initonly`` only writes the
config. The CLI finds the command through ``moxtrio_cli_commands`` because
its first word is this plugin's name.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from core.cli_catalog import Parser
from core.version import VERSION
from moxtrio import CliCommand

log = logging.getLogger("moxtrio")


def default_dir() -> Path:
    """mox's default: ``$XDG_CONFIG_HOME/mox-localserve``, else ``~/.config/mox-localserve``."""
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "mox-localserve"


def parser() -> Parser:
    p = Parser(
        "moxtrio localserve",
        "Run a local development server: all mail is accepted for delivery and delivered\n"
        "to the mox@localhost account, ports are the standard ones + 1000.\n"
        "The first run writes a config to -dir; later runs reuse it.",
    )
    p.add_argument(
        "-dir",
        default=None,
        metavar="DIR",
        help="directory for config and data (default $XDG_CONFIG_HOME/mox-localserve, "
        "else ~/.config/mox-localserve)",
    )
    p.add_argument(
        "-ip",
        default="",
        metavar="IP",
        help="IP address to listen on, only when writing a new config (default 127.0.0.1 "
        "and ::1); to change it later, remove -dir or edit its mox.conf",
    )
    p.add_argument(
        "-initonly", action="store_true", help="write the config in -dir and exit without serving"
    )
    p.add_argument(
        "-fast-retries",
        dest="fast_retries",
        action="store_true",
        help="moxtrio extension: deliveries waiting for a retry are made due every second "
        "instead of after minutes",
    )
    return p


def run(loglevel: str, a: argparse.Namespace) -> int:
    """Write the config when new, then serve until SIGTERM/SIGINT; the exit status."""
    from core.cli import run_server, setup_logging
    from core.config import ConfigError, load_config
    from plugins.localserve.init import write_localserve_config

    directory = Path(a.dir) if a.dir else default_dir()
    setup_logging(loglevel or "info")
    if a.initonly:
        if directory.exists():
            log.warning("directory for configuration files already exists, continuing")
        write_localserve_config(directory, a.ip or None)
        print(f"configuration written to {directory}")
        return 0
    created = not directory.exists()
    if created:
        try:
            write_localserve_config(directory, a.ip or None)
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
        config = load_config(str(directory / "mox.conf"))
    except ConfigError as exc:
        print(
            f"moxtrio: loading localserve config: {exc}\n"
            f"(remove {directory} to start with a new config)",
            file=sys.stderr,
        )
        return 1
    setup_logging(loglevel or config.static.LogLevel or "debug", config)
    status = run_server(
        config, localserve=True, banner=lambda server: banner(server, directory),
        settings={"localserve": {"fast_retries": True}} if a.fast_retries else None,
    )
    if status != 0 and created and not (directory / "moxtrio.db").exists():
        # A first start that failed (a port in use) leaves nothing behind,
        # so the next attempt may choose another -ip.
        _remove_tree(directory)
    return status


def _remove_tree(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)


def _url_host(server: Any) -> str:
    """The host the banner advertises: the address the listeners bound."""
    bound = (server.listening.smtp or [""])[0].split(" ", 1)[-1]
    host = bound.rsplit(":", 1)[0]
    return "localhost" if host in ("127.0.0.1", "[::1]", "") else host


def banner(server: Any, directory: Path) -> str:
    """What ``mox localserve`` prints once it listens, with the addresses actually bound."""
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


COMMAND = CliCommand(("localserve",), "run a local development server", parser, run)
