"""The event outbox: after-commit delivery of events to plugins, at least once.

In-transaction hooks (``moxtrio_outgoing_event``) are for rows: they run in
the store's writer thread inside the transaction that records the event and
must not touch the network. A plugin with a side effect on the network (a
chat message, an HTTP call) implements ``moxtrio_after_commit`` instead: the
core writes each event into the ``outbox`` table in that same transaction,
and a task drains the table after the commit, calling the hook once per
event in order, with the event's ``id``.

At least once: the row is deleted (acknowledged) only after every
implementation returned. A crash between the hook call and the
acknowledgement, or a plugin that raises or runs out of time, means the
event comes again (the crash: at the next start; the failure: after a
backoff, to every implementation), with the same ``id``, so plugins
de-duplicate by it. An event that still fails after ``MAX_ATTEMPTS`` is
dropped with an error in the log, so one broken plugin cannot stall the
outbox forever.

Nothing is recorded while no plugin implements the hook: the outbox costs
the hot paths nothing then.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from typing import Any

import trio

from core.dispatch import HookFailed
from core.events import CommittedEvent, OutgoingEvent
from core.failpoints import failpoint
from core.mlog import kv
from core.store.migrations import Migration
from core.store.sql import Connection

log = logging.getLogger("moxtrio.outbox")

HOOK = "moxtrio_after_commit"
#: The outbox table has an owner of its own, and exists only once a plugin
#: implementing the hook was loaded (no table and no rows otherwise).
OWNER = "core-outbox"
MIGRATIONS = (
    Migration(OWNER, 1, """
CREATE TABLE outbox (
    -- AUTOINCREMENT: an id is never reused, also after its row is deleted.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    created INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try INTEGER NOT NULL DEFAULT 0
)
"""),
    # Several nodes on one store: a node claims the events it hands out
    # (lease_node, lease_until in wall-clock microseconds, see
    # core.cluster.lease), so each event goes to the plugins from one node;
    # a node that dies leaves its claims to expire and another node hands
    # the events out again (with the same id, as after any crash).
    Migration(OWNER, 2, """
ALTER TABLE outbox ADD COLUMN lease_node TEXT NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
"""),
)
#: How long a claim on a batch of events lasts (they are handed out in seconds).
LEASE_US = 60 * 1_000_000
#: Seconds between looks at the outbox while it is empty.
POLL_INTERVAL = 0.25
#: Events handed out per read.
BATCH = 100
#: Failed deliveries of one event before it is dropped.
MAX_ATTEMPTS = 20
#: Longest wait before delivering a failed event again (seconds).
MAX_BACKOFF = 300
#: Failpoint between the hook calls and the acknowledgement (crash tests).
FAILPOINT_BEFORE_ACK = "outbox-before-ack"


def wanted(ctx: Any) -> bool:
    """Whether any plugin implements the after-commit hook."""
    return bool(ctx.hooks.implemented(HOOK))


def migrations(hooks: Any) -> list[Migration]:
    """The outbox's migrations when a plugin implements the hook, else none."""
    return list(MIGRATIONS) if hooks.implemented(HOOK) else []


def record_outgoing(conn: Connection, ctx: Any, event: OutgoingEvent) -> None:
    """Put an outgoing event in the outbox, inside the caller's transaction."""
    if not wanted(ctx):
        return
    conn.execute(
        "INSERT INTO outbox (kind, payload, created) VALUES ('outgoing', ?, ?)",
        (json.dumps(dataclasses.asdict(event)), int(time.time() * 1_000_000)),
    )


def _decode(row: tuple[Any, ...]) -> CommittedEvent:
    id_, kind, payload, created = row
    return CommittedEvent(id=int(id_), kind=kind, event=OutgoingEvent(**json.loads(payload)),
                          created_us=int(created))


_FREE = "next_try <= ? AND (lease_node = '' OR lease_until < ?)"


def _due(c: Connection) -> list[tuple[Any, ...]]:
    now = int(time.time() * 1_000_000)
    return c.execute(
        f"SELECT id FROM outbox WHERE {_FREE} ORDER BY id LIMIT ?", (now, now, BATCH)
    ).fetchall()


def _claim(c: Connection, ids: list[int], node: str) -> list[tuple[Any, ...]]:
    """Take the still unclaimed events of ``ids`` for this node (rows another
    node is claiming right now are passed over, not waited for)."""
    from core.cluster.lease import skip_locked, take

    now = int(time.time() * 1_000_000)
    marks = ", ".join("?" for _ in ids)
    rows = c.execute(
        f"SELECT id, kind, payload, created FROM outbox WHERE id IN ({marks}) AND {_FREE}"
        f" ORDER BY id{skip_locked(c)}",
        (*ids, now, now),
    ).fetchall()
    take(c, "outbox", [int(r[0]) for r in rows], node, now + LEASE_US)
    return [tuple(r) for r in rows]


async def run_outbox(ctx: Any, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Drain the outbox for the server's lifetime (started only when the hook is implemented)."""
    node = ctx.cluster.node_id
    if not ctx.cluster.shared:
        # The store is this node's alone: its claims are from a previous life.
        await ctx.store.write(
            lambda c: c.execute("UPDATE outbox SET lease_node = '', lease_until = 0 WHERE lease_node != ''")
        )
    task_status.started()
    while True:
        rows = await ctx.store.read(_due)
        if rows:
            ids = [int(r[0]) for r in rows]

            def claim(c: Connection, ids: list[int] = ids) -> list[tuple[Any, ...]]:
                return _claim(c, ids, node)

            rows = await ctx.store.write(claim)
        if not rows:
            await trio.sleep(POLL_INTERVAL)
            continue
        for row in rows:
            await deliver_one(ctx, _decode(row))


async def deliver_one(ctx: Any, event: CommittedEvent) -> bool:
    """Hand one event to the plugins; acknowledge it, or schedule it again. True if acknowledged."""
    try:
        await ctx.hooks.call(HOOK, ctx=ctx, event=event)
    except HookFailed as exc:
        await _failed(ctx, event, exc)
        return False
    failpoint(FAILPOINT_BEFORE_ACK)
    await ctx.store.write(lambda c: c.execute("DELETE FROM outbox WHERE id = ?", (event.id,)))
    return True


async def _failed(ctx: Any, event: CommittedEvent, exc: HookFailed) -> None:
    def update(c: Connection) -> int:
        row = c.execute("SELECT attempts FROM outbox WHERE id = ?", (event.id,)).fetchone()
        attempts = (row[0] if row else 0) + 1
        if attempts >= MAX_ATTEMPTS:
            c.execute("DELETE FROM outbox WHERE id = ?", (event.id,))
            return attempts
        delay = min(2 ** attempts, MAX_BACKOFF)
        c.execute("UPDATE outbox SET attempts = ?, next_try = ?, lease_node = '', lease_until = 0 WHERE id = ?",
                  (attempts, int((time.time() + delay) * 1_000_000), event.id))
        return attempts

    attempts = await ctx.store.write(update)
    if attempts >= MAX_ATTEMPTS:
        log.error("after-commit event dropped after repeated failures",
                  extra=kv(id=event.id, plugin=exc.plugin, attempts=attempts, err=str(exc)))
