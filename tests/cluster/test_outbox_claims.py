"""The after-commit outbox on a shared store: an event is handed out by the
one node that claimed it; a claim that expired is free again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core import outbox
from core.store import Store


async def test_outbox_event_goes_out_from_one_node(tmp_path: Path, db_backend: Any) -> None:
    store = await Store.open(tmp_path, list(outbox.MIGRATIONS), database=db_backend)
    try:
        for _ in range(2):
            await store.write(
                lambda c: c.execute("INSERT INTO outbox (kind, payload, created) VALUES ('outgoing', '{}', 0)")
            )
        ids = [int(r[0]) for r in await store.read(outbox._due)]
        assert len(ids) == 2
        a = await store.write(lambda c: outbox._claim(c, ids, "node-a"))
        b = await store.write(lambda c: outbox._claim(c, ids, "node-b"))
        assert [int(r[0]) for r in a] == ids and b == []
        assert await store.read(outbox._due) == []
        # node-a died: once its claim expired, node-b takes the events.
        await store.write(lambda c: c.execute("UPDATE outbox SET lease_until = 1"))
        again = await store.write(lambda c: outbox._claim(c, ids, "node-b"))
        assert [int(r[0]) for r in again] == ids
    finally:
        await store.aclose()
