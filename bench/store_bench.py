"""Store write throughput: one writer at a time vs many concurrent writers.

Run by hand: ``.venv/bin/python bench/store_bench.py [--seconds 3] [--writers 50]``.
Each write inserts one ``outgoing`` row through ``Store.write`` (so it is
durable, synchronous=FULL, when ``write`` returns). With one writer every
write is its own COMMIT (one fsync each); with many, the writer thread
commits whatever is waiting together (group commit).
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

import trio

from core.store import Store
from core.store.messages import record_outgoing
from core.store.models import utcnow


async def run(store: Store, writers: int, seconds: float) -> tuple[int, int, float]:
    """Returns (writes, commits, elapsed)."""
    done = 0
    start_commits = store.stats.commits
    deadline = trio.current_time() + seconds
    t0 = time.perf_counter()

    def insert(conn: sqlite3.Connection) -> None:
        record_outgoing(conn, "bench", ["rcpt@example.org"], utcnow())

    async def writer() -> None:
        nonlocal done
        while trio.current_time() < deadline:
            await store.write(insert)
            done += 1

    async with trio.open_nursery() as nursery:
        for _ in range(writers):
            nursery.start_soon(writer)
    return done, store.stats.commits - start_commits, time.perf_counter() - t0


async def main(seconds: float, writer_counts: list[int]) -> None:
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as d:
        async with await Store.open(d) as store:
            for n in writer_counts:
                writes, commits, elapsed = await run(store, n, seconds)
                print(
                    f"{n:3d} writer(s): {writes / elapsed:9.0f} writes/s, "
                    f"{commits / elapsed:7.0f} commits/s, "
                    f"{writes / max(commits, 1):6.1f} writes/commit"
                )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--writers", type=int, nargs="*", default=[1, 50])
    args = ap.parse_args()
    trio.run(main, args.seconds, args.writers)
