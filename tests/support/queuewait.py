"""Waiting for queue deliveries to finish, for tests that watch hook calls.

A test plugin sees ``moxtrio_outgoing_event`` (and the suppress decision)
inside the delivery's write transaction, in the store's writer thread,
before that transaction commits and before the delivery task removes the
message files it no longer needs. A test that waits for the recorded event
and then reads the store (retired rows, DSNs in the Inbox, suppression
entries) must also wait for the delivery that raised the event to finish:
otherwise a loaded machine lets the read run before the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from core.queue.service import QueueService

POLL = 0.02


def deliveries_idle(queue: QueueService) -> bool:
    """No delivery group is in flight: each one started has committed its
    outcomes and removed its unreferenced files."""
    s = queue.scheduler
    return s.active == 0 and not s.inflight


async def wait_settled(queue: QueueService, pred: Callable[[], Any], timeout: float) -> None:
    """Wait (bounded) until ``pred()`` holds and then no delivery is in flight.

    ``pred`` may return an awaitable. It is checked first: a delivery that
    raised what ``pred`` saw was started before, so once the queue is idle
    afterwards, that delivery's transaction has committed.
    """
    with trio.fail_after(timeout):
        while True:
            r = pred()
            if hasattr(r, "__await__"):
                r = await r
            if r and deliveries_idle(queue):
                return
            await trio.sleep(POLL)


async def wait_scheduler_round(queue: QueueService, timeout: float) -> None:
    """Wait (bounded) until the scheduler ran one whole round that started
    after this call, so it has seen the current queue and clock.

    For "nothing happens" checks: afterwards, a delivery the round started
    shows in :func:`deliveries_idle` (the scheduler counts a group as active
    before its task runs), with no fixed sleep that a loaded machine can
    outlast.
    """
    s = queue.scheduler
    first = s.rounds + 1
    queue.kick()
    with trio.fail_after(timeout):
        # Round ``first`` begins after the kick; ``first + 1`` only begins
        # once ``first`` has finished, woken by another kick.
        while s.rounds < first + 1:
            if s.rounds >= first:
                queue.kick()
            await trio.sleep(POLL)
