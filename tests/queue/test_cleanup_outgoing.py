"""The queue's periodic cleanup also prunes the submission records."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

from core.store.messages import record_outgoing

from .conftest import START


async def test_periodic_cleanup_prunes_old_submission_records(harness_factory: Any) -> None:
    h = await harness_factory(start=False)
    store = h.ctx.store

    def setup(c: sqlite3.Connection) -> None:
        for days in (60, 30, 20, 1):
            record_outgoing(c, "mjl", ["r@example.org"], START - timedelta(days=days))

    def recorded(c: sqlite3.Connection) -> list[int]:
        return [r[0] for r in c.execute("SELECT submitted FROM outgoing ORDER BY submitted")]

    await store.write(setup)
    assert len(await store.read(recorded)) == 4
    # What the hourly loop runs: the 60- and 30-day-old records go; the newest
    # record older than a week and the recent one stay.
    assert await h.queue.cleanup_retired() == 0
    kept = await store.read(recorded)
    assert len(kept) == 2
    h.clock.advance(timedelta(days=30))
    await h.queue.cleanup_retired()
    assert len(await store.read(recorded)) == 1
