"""Webhook throughput and Send -> delivered-webhook latency (run by hand).

    .venv/bin/python bench/webhooks_bench.py [N]

1. Throughput: N hooks queued at once, delivered to a local stdlib HTTP
   receiver, (a) all to one URL (mox delivers one at a time per URL), (b)
   spread over 20 URLs (up to 10 in flight).
2. Latency: a message queued like webapi Send in a running localserve, timed
   until the receiver has its ``delivered`` webhook (queue delivery over SMTP
   to the local listener, the event, the webhook POST).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import trio

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.address import parse_address  # noqa: E402
from core.queue.add import AddRecipient, AddRequest  # noqa: E402
from plugins.webhooks.queue_ops import queue_hook  # noqa: E402
from plugins.webhooks.records import Hook  # noqa: E402
from plugins.webhooks.service import WebhookService
from tests.support.inproc import localserve_config_dir, running_server  # noqa: E402
from tests.webhooks.helpers import account_edit, receiver  # noqa: E402


async def throughput(ctx: Any, rec: Any, n: int, urls: int) -> float:
    svc = ctx.service(WebhookService)
    store = ctx.store
    before = len(rec.requests)
    now = svc.clock.now()

    def insert(conn: Any) -> None:
        for i in range(n):
            hook = Hook(account="mox", url=rec.url(f"/t{i % urls}"), payload=f'{{"n":{i}}}',
                        submitted=now, next_attempt=now, is_incoming=True)
            queue_hook(conn, ctx.config, hook, now)

    t0 = time.perf_counter()
    await store.write(insert)
    svc.kick()
    await rec.wait(before + n, timeout=600)
    while True:
        if not await store.read(lambda c: c.execute("SELECT COUNT(*) FROM webhook_queue").fetchone()[0]):
            break
        await trio.sleep(0.005)
    return n / (time.perf_counter() - t0)


async def latency(ctx: Any, rec: Any, rounds: int) -> list[float]:
    out = []
    queue = ctx.queue
    for i in range(rounds):
        before = len(rec.for_path("/out"))
        data = f"From: mox@localhost\r\nTo: r{i}@example.org\r\nSubject: lat {i}\r\n\r\nx\r\n".encode()
        t0 = time.perf_counter()
        file_id = await ctx.store.files.store(data)
        await queue.add(AddRequest(account="mox", mail_from=parse_address("mox@localhost"),
                                   recipients=[AddRecipient(address=parse_address(f"r{i}@example.org"))],
                                   file_id=file_id, subject=f"lat {i}", use_fromid=True))
        await rec.wait(before + 1, "/out", timeout=60)
        out.append(time.perf_counter() - t0)
    return out


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        async with receiver() as rec:
            edit = account_edit(out_url=rec.url("/out"), keep_webhooks="1h")
            directory, _ = localserve_config_dir(Path(tmp), edit_domains=edit)
            async with running_server(directory) as server:
                ctx = server.ctx
                one = await throughput(ctx, rec, n, 1)
                many = await throughput(ctx, rec, n, 20)
                lat = await latency(ctx, rec, 30)
    print(f"throughput, {n} hooks, 1 URL (sequential):   {one:8.0f} webhooks/s")
    print(f"throughput, {n} hooks, 20 URLs (10 in flight): {many:8.0f} webhooks/s")
    print(f"Send -> delivered webhook latency over {len(lat)} sends: median {statistics.median(lat) * 1000:.1f} ms,"
          f" p90 {sorted(lat)[int(len(lat) * 0.9)] * 1000:.1f} ms, max {max(lat) * 1000:.1f} ms")


if __name__ == "__main__":
    trio.run(main, int(sys.argv[1]) if len(sys.argv) > 1 else 500)
