"""Wake-ups between nodes on PostgreSQL: a notification sent in one node's
write transaction reaches another node's subscriber when, and only when,
that transaction commits."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import trio

from core.cluster import Wakeups
from core.cluster.listen import attach
from core.store import Store


class Boom(Exception):
    pass


async def test_notify_reaches_other_node_only_on_commit(tmp_path: Path, pg_database: Any) -> None:
    a_store = await Store.open(tmp_path / "a", database=pg_database)
    b_store = await Store.open(tmp_path / "b", database=pg_database)
    try:
        a, b = Wakeups(), Wakeups()
        assert attach(a_store, a) is not None
        listener = attach(b_store, b)
        assert listener is not None
        got: list[str] = []
        woke = trio.Event()

        def on(name: str) -> Any:
            def fn() -> None:
                got.append(name)
                woke.set()
            return fn

        b.subscribe("queue", on("queue"))
        b.subscribe("webhooks", on("webhooks"))
        async with trio.open_nursery() as n:
            await n.start(listener.run)
            # Once listening, every channel is kicked once (its subscriber
            # catches up on what came before); wait for that, then start clean.
            with trio.fail_after(15):
                while set(got) != {"queue", "webhooks"}:
                    await trio.sleep(0.01)
            got.clear()
            woke = trio.Event()

            def rolled_back(c: Any) -> None:
                a.notify(c, "queue")
                raise Boom

            try:
                await a_store.write(rolled_back)
            except Boom:
                pass
            await a_store.write(lambda c: a.notify(c, "webhooks"))
            with trio.fail_after(15):
                await woke.wait()
            # Delivered in commit order: the rolled-back queue notification
            # would have come first.
            assert got == ["webhooks"]
            woke = trio.Event()
            await a_store.write(lambda c: a.notify(c, "queue"))
            with trio.fail_after(15):
                await woke.wait()
            assert got == ["webhooks", "queue"]
            n.cancel_scope.cancel()
    finally:
        await a_store.aclose()
        await b_store.aclose()
