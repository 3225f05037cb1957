"""The delivery loop: one trio task that sleeps until something is due.

No polling while idle: the task computes the earliest NextAttempt among
non-held, unclaimed entries (and the earliest lease expiry, when another
node's claim could need taking over) and sleeps until then (24 h when
there is nothing), woken early by :meth:`kick` (new entries on any node,
admin changes, finished deliveries, a fake clock moving).

Each round first checks with a cheap read whether anything is due; if so
it claims in one write transaction (:mod:`core.queue.claim`): due entries
grouped per message (BaseID) and recipient domain, one delivery task per
group, each group under this node's lease. Concurrency is bounded per node
(``max_deliveries``, kept here) and per recipient domain across every node
sharing the store (``max_per_domain``, counted in the claim from the
leases). When due entries wait only for another node's domain slots, the
loop looks again every :data:`BLOCKED_POLL` seconds.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import trio

from core.cluster.node import now_us
from core.queue.claim import Round, work_waiting
from core.queue.clock import Clock
from core.queue.deliver import DeliverySettings
from core.queue.prepare import Claimed
from core.store.models import from_db_time

log = logging.getLogger("moxtrio.queue")

IDLE_SLEEP = 24 * 3600.0
ERROR_SLEEP = 60.0
#: Re-check interval while due entries wait for domain slots other nodes hold.
BLOCKED_POLL = 1.0
#: Pause (jittered) before claiming again when another node held the claim lock.
CONTENDED_RETRY = 0.05


@dataclass
class QueueSettings:
    """Delivery concurrency and knobs (mox itself: 10 total, 1 per domain)."""

    max_deliveries: int = 32
    max_per_domain: int = 4
    #: Due rows looked at per scheduling round.
    due_batch: int = 1000
    delivery: DeliverySettings = field(default_factory=DeliverySettings)


ClaimFn = Callable[[int], Awaitable[Round]]
DeliverFn = Callable[[Claimed, str], Awaitable[None]]


def _earliest(conn: Any, node: str) -> tuple[datetime | None, int | None]:
    """The earliest NextAttempt of a free, unheld entry, and the earliest expiry
    of another node's lease (when a takeover may be due)."""
    row = conn.execute(
        "SELECT MIN(next_attempt) FROM queue WHERE hold = 0 AND lease_node = ''"
    ).fetchone()
    t = None if row is None or row[0] is None else from_db_time(row[0])
    row = conn.execute(
        "SELECT MIN(lease_until) FROM queue WHERE lease_node != '' AND lease_node != ?", (node,)
    ).fetchone()
    expiry = None if row is None or row[0] is None else int(row[0])
    return t, expiry


class Scheduler:
    """Claims due entries and starts delivery tasks; see the module docstring."""

    def __init__(self, store: object, clock: Clock, settings: QueueSettings, node_id: str = "") -> None:
        self.store = store
        self.node_id = node_id
        self.clock = clock
        self.settings = settings
        #: Entries this node is delivering (for tests and shutdown).
        self.inflight: set[int] = set()
        #: Delivery groups this node runs.
        self.active = 0
        self.rounds = 0
        self.contended = False
        self._wake = trio.Event()
        #: When the sleeping loop wakes by itself; None while a round runs.
        self._wake_at: datetime | None = None

    def kick(self) -> None:
        """Re-evaluate now (safe to call from the trio thread at any time)."""
        self._wake.set()

    @property
    def wake_at(self) -> datetime | None:
        """When the sleeping loop wakes by itself; None while a round runs."""
        return self._wake_at

    def kick_for(self, next_attempts: Iterable[datetime]) -> None:
        """New entries due at ``next_attempts`` (held ones left out): re-evaluate only
        if one is due before the loop wakes anyway.

        A held entry, or one due later (FutureRelease), cannot change what the
        sleeping loop does next, so adding it costs no scheduling round (two
        reads); while a round runs every kick counts.
        """
        wake_at = self._wake_at
        try:
            later = wake_at is not None and all(t >= wake_at for t in next_attempts)
        except TypeError:  # a naive time among aware ones: do not guess
            later = False
        if not later:
            self._wake.set()

    def release(self, ids: list[int], group_done: bool = False) -> None:
        """Entries no longer in flight; with ``group_done``, the group's slot is freed too."""
        self.inflight.difference_update(ids)
        if group_done:
            self.active -= 1
        self.kick()

    async def _start_due(
        self, nursery: trio.Nursery, claim: ClaimFn, deliver: DeliverFn
    ) -> tuple[int, bool]:
        free = self.settings.max_deliveries - self.active
        now = self.clock.now()
        at = now_us()
        node = self.node_id
        waiting = await self.store.read(lambda c: work_waiting(c, now, at, node))  # type: ignore[attr-defined]
        if not waiting:
            self.contended = False
            return 0, False
        rnd = await claim(free)
        for claimed, domain in rnd.groups:
            self.inflight.update(claimed.started)
            self.active += 1
            nursery.start_soon(deliver, claimed, domain)
        self.contended = rnd.contended
        return len(rnd.groups), rnd.blocked or free <= 0

    async def _next_delay(self, blocked: bool) -> tuple[float, datetime | None]:
        """Seconds until the loop should look again, and the earliest entry's
        time when the sleep ends exactly then (see :meth:`run`)."""
        if self.contended:
            return CONTENDED_RETRY * (1 + random.random()), None
        node = self.node_id
        t, expiry = await self.store.read(lambda c: _earliest(c, node))  # type: ignore[attr-defined]
        delay = IDLE_SLEEP
        wake_at: datetime | None = None
        if t is not None:
            due_in = (t - self.clock.now()).total_seconds()
            if due_in > 0:
                delay = due_in
                wake_at = t
            elif self.active >= self.settings.max_deliveries:
                pass  # a finishing delivery kicks us
            elif blocked:
                delay = BLOCKED_POLL
            else:
                delay = 0.0
        if expiry is not None:
            until_expiry = max((expiry - now_us()) / 1e6, 0.0) + 0.01
            if until_expiry < delay:
                delay, wake_at = until_expiry, None
        if delay >= IDLE_SLEEP:
            return IDLE_SLEEP, None
        return max(delay, 0.0), wake_at

    async def run(self, nursery: trio.Nursery, claim: ClaimFn, deliver: DeliverFn) -> None:
        """The loop; runs until cancelled."""
        while True:
            self._wake = trio.Event()
            self._wake_at = None
            self.rounds += 1
            started = 0
            wake_at: datetime | None = None
            try:
                started, blocked = await self._start_due(nursery, claim, deliver)
                delay, wake_at = await self._next_delay(blocked)
            except Exception:  # noqa: BLE001 - keep delivering after a DB hiccup
                log.exception("queue scheduler: database error, retrying in a minute")
                delay = ERROR_SLEEP
            if delay <= 0 and not started:
                # Something is due that this round could not start (a claim
                # race still settling): never spin, look again shortly.
                delay = 0.05
                wake_at = None
            if delay > 0:
                # The earliest entry's own time when that is what the loop
                # waits for: an entry added for the same moment (FutureRelease
                # in whole seconds, as applications send it) then costs no round.
                self._wake_at = wake_at or self.clock.now() + timedelta(seconds=delay)
                with trio.move_on_after(delay):
                    await self._wake.wait()
            else:
                await trio.lowlevel.checkpoint()
