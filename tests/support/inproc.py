"""Run a whole moxtrio server inside the test's trio loop.

Faster than a child process and lets a test reach the server's objects
(``server.ctx.store``, ``server.ctx.queue``) while still speaking real
protocols to it over loopback. Each server gets a 127.x.y.z of its own, so
mox's fixed localserve ports never collide between tests or with a running
localserve.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

import trio

from core.config import load_config
from core.dns import Resolver
from core.runtime import Server
from core.store.settings import DatabaseSettings
from plugins.localserve.init import write_localserve_config
from tests.support import backend
from tests.support.backend import write_store_settings
from tests.support.dnsresponder import DNSResponder
from tests.support.procs import unique_loopback_ip


def localserve_config_dir(tmp_path: Path, ip: str | None = None,
                          edit_domains: Callable[[str], str] | None = None,
                          edit_mox: Callable[[str], str] | None = None) -> tuple[Path, str]:
    """Write a localserve config for a unique loopback IP; optionally edit it."""
    ip = ip or unique_loopback_ip()
    directory = tmp_path / f"ls-{ip}"
    write_localserve_config(directory, ip)
    if edit_domains:
        p = directory / "domains.conf"
        p.write_text(edit_domains(p.read_text()))
    if edit_mox:
        p = directory / "mox.conf"
        p.write_text(edit_mox(p.read_text()))
    return directory, ip


@asynccontextmanager
async def running_server(
    config_dir: Path, *, localserve: bool = True, extra_plugins: list[Any] | None = None,
    resolver: Resolver | None = None, dns_records: dict[str, Any] | None = None,
    clock: Any = None, settings: dict[str, dict[str, Any]] | None = None,
    database: DatabaseSettings | None | Literal["current"] = "current",
) -> AsyncIterator[Server]:
    """Start a server for ``config_dir/mox.conf`` and stop it afterwards.

    ``resolver``, ``clock`` and plugin ``settings`` go to the server before
    start-up. Without a resolver, a loopback responder serves
    ``dns_records`` (every other name is NXDOMAIN). ``database`` (by default
    the test's backend, :mod:`tests.support.backend`) goes to
    ``plugins/store.yaml``; None keeps the config's own choice.
    """
    write_store_settings(config_dir, backend.current() if database == "current" else database)
    config = load_config(config_dir / "mox.conf")
    responder = None
    if resolver is None:
        # Never let a test reach the machine's real resolver (it is not on
        # loopback): a local responder with no records answers NXDOMAIN.
        responder = DNSResponder(dns_records).start()
        resolver = Resolver(responder.nameservers, port=responder.port, lifetime=3)
    server = Server(config, localserve=localserve, extra_plugins=extra_plugins or [],
                    resolver=resolver, clock=clock, settings=settings)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            try:
                yield server
            finally:
                server.request_shutdown()
        # Leaving the nursery waits for server.run to return (clean shutdown).
    finally:
        if responder is not None:
            responder.stop()
