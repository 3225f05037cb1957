"""Child process for the kill -9 test: writes rows, prints each id once durable.

Several concurrent writers, so the group-commit path is what gets killed.
Run as ``python _durability_child.py <data_dir>``.
"""

from __future__ import annotations

import sqlite3
import sys

import trio

from core.store import Store
from core.store.messages import record_outgoing
from core.store.models import utcnow


async def main(data_dir: str) -> None:
    store = await Store.open(data_dir)

    def insert(conn: sqlite3.Connection) -> int:
        record_outgoing(conn, "kill", ["r@x"], utcnow())
        return int(conn.execute("SELECT last_insert_rowid()").fetchone()[0])

    async def writer() -> None:
        for _ in range(100_000):  # bounded; the parent kills us long before
            rowid = await store.write(insert)
            sys.stdout.write(f"{rowid}\n")
            sys.stdout.flush()

    sys.stdout.write("ready\n")
    sys.stdout.flush()
    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(writer)


if __name__ == "__main__":
    trio.run(main, sys.argv[1])
