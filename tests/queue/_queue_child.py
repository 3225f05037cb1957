"""Child process for the kill -9 test and the benchmark: a queue on a real store.

Usage: python -m tests.queue._queue_child <mox.conf> <dns_port> <smtp_port> <mode> [n] [offset_s]
mode "add": queue n messages (one recipient each) then deliver; "run": deliver only.
``offset_s`` shifts the queue's clock forward, so a restarted queue finds
entries claimed by the killed run due again.
"""

from __future__ import annotations

import sqlite3
import sys
from datetime import datetime, timedelta

import trio

from core.address import parse_address
from core.config import load_config
from core.dispatch import HookDispatcher
from core.dns import Resolver
from core.plugin_api import PluginContext
from core.queue.add import AddRecipient, AddRequest
from core.queue.deliver import DeliverySettings
from core.queue.scheduler import QueueSettings
from core.queue.service import QueueService
from core.store import Store
from core.store.accounts import ensure_account
from core.store.models import utcnow
from core.store.settings import load_database_settings
from tests.queue.conftest import make_pm


class OffsetClock:
    def __init__(self, offset: timedelta) -> None:
        self.offset = offset

    def now(self) -> datetime:
        return utcnow() + self.offset


async def main(conf: str, dns_port: int, smtp_port: int, mode: str, n: int, offset: float) -> None:
    config = load_config(conf)
    # The test's backend reaches the child through plugins/store.yaml, as for a server.
    store = await Store.open(config.data_dir, database=load_database_settings(config.dir))
    await store.check_files()

    def accounts(c: sqlite3.Connection) -> None:
        for name in config.dynamic.Accounts:
            ensure_account(c, name)

    await store.write(accounts)
    ctx = PluginContext(config=config, store=store, hooks=HookDispatcher(make_pm()))
    ctx.resolver = Resolver(["127.0.0.1"], port=dns_port, timeout=2, lifetime=4)
    settings = QueueSettings(delivery=DeliverySettings(smtp_port=smtp_port))
    queue = QueueService(ctx, clock=OffsetClock(timedelta(seconds=offset)), settings=settings)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            if mode == "add":
                body = b"From: <mjl@mail.example>\r\nSubject: kill\r\n\r\nbody\r\n"

                async def one(i: int) -> None:
                    fid = await store.files.store(body)
                    await queue.add(
                        AddRequest(
                            account="mjl",
                            mail_from=parse_address("mjl@mail.example"),
                            recipients=[AddRecipient(parse_address(f"r{i}@example.org"))],
                            file_id=fid,
                            subject="kill",
                        )
                    )

                async with trio.open_nursery() as adders:
                    for i in range(n):
                        adders.start_soon(one, i)
            print("READY", flush=True)
            await trio.sleep_forever()
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


if __name__ == "__main__":
    a = sys.argv[1:]
    trio.run(
        main,
        a[0],
        int(a[1]),
        int(a[2]),
        a[3],
        int(a[4]) if len(a) > 4 else 0,
        float(a[5]) if len(a) > 5 else 0.0,
    )
