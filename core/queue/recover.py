"""Settling attempts that started but whose outcome was never recorded.

An attempt can be cut short by a shutdown that does not wait for it, by a
crash, or by a store that cannot record its outcome. The claim left the
entry with a "delivering..." result (or, for deliveries to our own
listener, :data:`~core.queue.loopback.DELIVERED_UNRECORDED`). At start-up
and when a shutdown cancels an attempt, each such entry is settled:

- delivered to our own listener: recorded as delivered now (retired, one
  ``delivered`` event), never delivered again;
- not delivered to our own listener (no mark, where a plugin delivers there): the claim is
  undone (attempt count back, due at once, no event), so an interrupted
  attempt costs no backoff and sends no ``delayed`` webhook;
- delivered elsewhere, outcome unknown: as mox, the attempt counts and the
  entry is retried after its backoff; the result says so (no event).

With several nodes on one store, an attempt in progress is only settled by
whoever may: the node that starts settles the attempts of leases that
expired (their node is gone) and those held under its own node id; an
attempt another live node holds is left alone, however it looks. A lease
that expires while its node is away is settled by any node's scheduler
(:mod:`core.queue.claim`) and the entry is retried at once: the lease's
length was the pause.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from core.queue.loopback import DELIVERED_UNRECORDED, in_progress
from core.queue.results import Applied, RecipientOutcome, apply_outcomes
from core.store import queue_rows
from core.store.sql import Connection

log = logging.getLogger("moxtrio.queue")

INTERRUPTED = "delivery attempt interrupted, outcome unknown"


def interrupted_ids(conn: Connection) -> list[int]:
    """Queue entries whose latest attempt has no recorded outcome (every node's)."""
    rows = conn.execute(
        "SELECT id FROM queue WHERE results LIKE '%delivering...%' OR results LIKE ?",
        (f"%{DELIVERED_UNRECORDED}%",),
    ).fetchall()
    return [int(r[0]) for r in rows]


def settle_interrupted(
    conn: Connection,
    ctx: Any,
    ids: list[int],
    now: datetime,
    *,
    loopback: bool,
    retry_now: bool = False,
) -> tuple[Applied, int]:
    """Settle the given entries (in-transaction); returns what was applied and how many reset.

    ``loopback``: attempts went to our own listener, so a missing mark
    means not delivered. ``retry_now``: an attempt whose outcome is unknown
    is retried at once rather than after its backoff (a lease taken over).
    The caller clears the entries' leases.
    """
    delivered: list[RecipientOutcome] = []
    reset = 0
    for entry_id in ids:
        try:
            e = queue_rows.get_queue_entry(conn, entry_id)
        except queue_rows.QueueEntryNotFound:
            continue
        marker = in_progress(e)
        if marker is None:
            continue
        last = e.results[-1]
        if marker == DELIVERED_UNRECORDED:
            delivered.append(RecipientOutcome(entry_id=e.id, ok=True, start=last.start))
            continue
        if loopback:
            e.results.pop()
            e.attempts = max(e.attempts - 1, 0)
            e.next_attempt = now
            reset += 1
        else:
            last.error = INTERRUPTED
            if retry_now:
                e.next_attempt = now
        queue_rows.update_queue_entry(conn, e)
    applied = apply_outcomes(conn, ctx, delivered, {}, now) if delivered else Applied()
    return applied, reset
