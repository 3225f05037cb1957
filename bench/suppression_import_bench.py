"""Suppression list import: N addresses (default 100,000) in one atomic import.

Run by hand: ``.venv/bin/python bench/suppression_import_bench.py [--n 100000]``.
Prints the time to parse and check every line (worker thread) and to write
them in one transaction (the store's writer, synchronous=FULL), then the
time of a second import of the same list (every entry updated in place).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import trio

from core.store import Store
from core.store.models import utcnow
from plugins.suppression.bulk import parse_import
from plugins.suppression.records import MIGRATIONS, upsert_suppressions
from plugins.suppression.service import SuppressionService


class _Ctx:
    def __init__(self, store: Store) -> None:
        self.store = store


async def main(n: int) -> None:
    body = "address,category,reason\n" + "".join(
        f"user{i}@example{i % 50}.org,{'complaint' if i % 10 == 0 else 'manual'},import {i}\n"
        for i in range(n)
    )
    with tempfile.TemporaryDirectory() as d:
        store = await Store.open(Path(d), list(MIGRATIONS))
        svc = SuppressionService(_Ctx(store))  # type: ignore[arg-type]
        t0 = time.perf_counter()
        entries = parse_import("mox", body, "csv", utcnow())
        t1 = time.perf_counter()
        await store.write(lambda c: upsert_suppressions(c, entries))
        t2 = time.perf_counter()
        print(f"{n} addresses: parse+check {t1 - t0:.2f}s, one transaction {t2 - t1:.2f}s")
        for label in ("new list", "again"):
            if label == "new list":
                await store.write(lambda c: c.execute("DELETE FROM suppression_list"))
            t0 = time.perf_counter()
            got = await svc.import_data("mox", body, "csv")
            print(f"import_data ({label}): {got} addresses in {time.perf_counter() - t0:.2f}s")
        await store.aclose()


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=100_000)
    trio.run(main, p.parse_args().n)
