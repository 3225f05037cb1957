"""Queue benchmark: delivery throughput to a local SMTP sink, and idle scheduler CPU.

Run by hand: ``.venv/bin/python bench/queue_bench.py [--messages 1000] [--held 10000]``.

1. Throughput: N single-recipient messages (spread over 8 recipient
   domains so the per-domain limit doesn't serialise them) are added and
   delivered to the aiosmtpd sink process (tests/support/smtpsink.py), with
   DNS from the loopback responder. Reports adds/s and delivered/s (from the
   first add until every entry is retired).
2. Idle: N held entries in the queue; the process CPU time (user+sys, all
   threads) spent over 10 s while the scheduler waits shows it does not poll.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.address import parse_address  # noqa: E402
from core.config import load_config  # noqa: E402
from core.dispatch import HookDispatcher  # noqa: E402
from core.dns import Resolver  # noqa: E402
from core.hookspecs import hookimpl  # noqa: E402
from core.plugin_api import PluginContext  # noqa: E402
from core.queue.add import AddRecipient, AddRequest  # noqa: E402
from core.queue.deliver import DeliverySettings  # noqa: E402
from core.queue.scheduler import QueueSettings  # noqa: E402
from core.queue.service import QueueService  # noqa: E402
from core.store import Store  # noqa: E402
from core.store.accounts import ensure_account  # noqa: E402
from tests.queue.conftest import make_pm, write_config  # noqa: E402
from tests.support.dnsresponder import DNSResponder  # noqa: E402
from tests.support.smtpsink import smtp_sink  # noqa: E402

DOMAINS = [f"d{i}.example" for i in range(8)]  # --domains N keeps the first N
BODY = b"From: <mjl@mail.example>\r\nSubject: bench\r\n\r\n" + b"x" * 2000 + b"\r\n"


class HoldAll:
    @hookimpl
    def moxtrio_queue_adding(self, conn: sqlite3.Connection, entries: list[Any]) -> None:
        for e in entries:
            e.hold = True


async def setup(
    directory: Path, plugins: tuple[object, ...], dns_port: int, smtp_port: int
) -> tuple[Store, QueueService]:
    config = load_config(write_config(directory))
    store = await Store.open(config.data_dir)

    def accounts(c: sqlite3.Connection) -> None:
        for name in config.dynamic.Accounts:
            ensure_account(c, name)

    await store.write(accounts)
    ctx = PluginContext(config=config, store=store, hooks=HookDispatcher(make_pm(*plugins)))
    ctx.resolver = Resolver(["127.0.0.1"], port=dns_port, timeout=2, lifetime=4)
    queue = QueueService(
        ctx, settings=QueueSettings(delivery=DeliverySettings(smtp_port=smtp_port))
    )
    return store, queue


async def add_many(store: Store, queue: QueueService, n: int) -> None:
    async def one(i: int) -> None:
        fid = await store.files.store(BODY)
        await queue.add(
            AddRequest(
                account="mjl",
                mail_from=parse_address("mjl@mail.example"),
                recipients=[AddRecipient(parse_address(f"r{i}@{DOMAINS[i % len(DOMAINS)]}"))],
                file_id=fid,
                subject="bench",
            )
        )

    limiter = trio.CapacityLimiter(64)

    async def limited(i: int) -> None:
        async with limiter:
            await one(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(limited, i)


async def throughput(directory: Path, n: int, dns_port: int, smtp_port: int) -> None:
    store, queue = await setup(directory, (), dns_port, smtp_port)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            t0 = time.perf_counter()
            await add_many(store, queue, n)
            t_add = time.perf_counter() - t0
            while True:
                if not await queue.count():
                    break
                await trio.sleep(0.05)
            t_all = time.perf_counter() - t0
            nursery.cancel_scope.cancel()
    finally:
        await store.aclose()
    print(f"added {n} messages in {t_add:.2f}s ({n / t_add:.0f}/s, concurrent with delivery)")
    print(f"delivered {n} messages in {t_all:.2f}s: {n / t_all:.0f} messages/s")


async def idle_cpu(directory: Path, n: int, dns_port: int, seconds: float) -> None:
    store, queue = await setup(directory, (HoldAll(),), dns_port, 25)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(queue.run)
            await add_many(store, queue, n)
            await trio.sleep(0.5)
            rounds0 = queue.scheduler.rounds
            c0 = time.process_time()
            await trio.sleep(seconds)
            cpu = time.process_time() - c0
            rounds = queue.scheduler.rounds - rounds0
            nursery.cancel_scope.cancel()
    finally:
        await store.aclose()
    print(
        f"idle with {n} held entries: {cpu * 1000:.1f} ms CPU over {seconds:.0f} s"
        f" ({cpu / seconds * 100:.3f}% of a core), {rounds} scheduler rounds"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--held", type=int, default=10000)
    ap.add_argument("--idle-seconds", type=float, default=10.0)
    ap.add_argument("--domains", type=int, default=8, help="recipient domains (1 = all to one domain)")
    args = ap.parse_args()
    del DOMAINS[args.domains:]
    records: dict[str, dict[str, list[str]]] = {}
    for d in DOMAINS:
        records[d] = {"MX": [f"10 mx.{d}."]}
        records[f"mx.{d}"] = {"A": ["127.0.0.1"]}
    with tempfile.TemporaryDirectory() as tmp, DNSResponder(records) as dns:
        with smtp_sink(Path(tmp) / "sink") as sink:
            trio.run(throughput, Path(tmp) / "t", args.messages, dns.port, sink.port)
        trio.run(idle_cpu, Path(tmp) / "i", args.held, dns.port, args.idle_seconds)


if __name__ == "__main__":
    main()
