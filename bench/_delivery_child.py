"""Child process for ``smtp_bench.py -mode delivery``: a localserve whose DNS is a local responder.

Usage: python bench/_delivery_child.py <code root> <config dir> <ip> <dns port>

The server code is imported from ``<code root>`` (this tree, or an older
checkout for a before/after comparison). Prints READY once listening and
runs until terminated.
"""

from __future__ import annotations

import signal
import sys
from pathlib import Path


def main() -> None:
    root, directory, ip, dns_port = sys.argv[1], Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
    sys.path.insert(0, root)
    import trio

    from core.config import load_config
    from core.dns import Resolver
    from core.runtime import Server
    from plugins.localserve.init import write_localserve_config

    write_localserve_config(directory, ip)
    config = load_config(directory / "mox.conf")
    resolver = Resolver(["127.0.0.1"], port=dns_port, timeout=2, lifetime=4)
    server = Server(config, localserve=True, resolver=resolver)

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(server.run)
            print("READY", flush=True)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                async for _ in signals:
                    server.request_shutdown()
                    break

    trio.run(run)


if __name__ == "__main__":
    main()
