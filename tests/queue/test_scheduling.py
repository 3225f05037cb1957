"""The delivery loop re-evaluates the queue only when a new entry can matter.

Adding an entry that is held, or due after the moment the sleeping loop
wakes anyway (a FutureRelease), must not cost a scheduling round; an entry
due before that moment must.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import trio.testing

from tests.queue.conftest import START


async def _rounds_after(h: Any) -> int:
    """The loop's rounds once it sleeps again. It counts a round as soon as it
    wakes; its reads run in threads, which ``wait_all_tasks_blocked`` does not
    wait for, so a round still reading has not yet decided when to wake."""
    with trio.fail_after(10):
        await trio.testing.wait_all_tasks_blocked()
        while h.queue.scheduler.wake_at is None:
            await trio.sleep(0.005)
            await trio.testing.wait_all_tasks_blocked()
    return int(h.queue.scheduler.rounds)


async def test_later_and_held_entries_do_not_wake_the_loop(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory() as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        assert await h.nothing_started()
        rounds = await _rounds_after(h)

        # The queue was empty (the loop sleeps a day): an entry due in an hour wakes it.
        await h.add(["a@example.org"], next_attempt=START + timedelta(hours=1))
        rounds_a = await _rounds_after(h)
        assert rounds_a == rounds + 1

        # Due after the loop's own wake-up: no round.
        await h.add(["b@example.org"], next_attempt=START + timedelta(hours=2))
        assert await _rounds_after(h) == rounds_a

        # Held (by a queue-adding plugin), even though due now: no round.
        h.recorder.hold_all = True
        [held] = await h.add(["c@example.org"])
        assert held.hold
        assert await _rounds_after(h) == rounds_a
        h.recorder.hold_all = False

        # Due now: a round, which delivers it.
        [now] = await h.add(["d@example.org"])
        assert await _rounds_after(h) > rounds_a
        await h.wait_for(lambda: h.recorder.events_for("d@example.org") == ["delivered"])
        assert h.recorder.events_for("a@example.org") == []


async def test_an_entry_due_with_the_earliest_one_does_not_wake_the_loop(
    harness_factory: Any, sink_factory: Any
) -> None:
    """The loop sleeps until the earliest entry's own time, so more entries for that
    moment (a FutureRelease in whole seconds, sent by many Sends) cost no round,
    although the clock moved on while the loop worked out its sleep."""
    async with sink_factory() as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        assert await h.nothing_started()
        fixed = h.clock.now
        ticks = 0

        def ticking() -> Any:
            nonlocal ticks
            ticks += 1
            return fixed() + timedelta(microseconds=ticks)

        h.clock.now = ticking
        due = START + timedelta(hours=1)
        await h.add(["a@example.org"], next_attempt=due)
        rounds_a = await _rounds_after(h)
        await h.add(["b@example.org"], next_attempt=due)
        await h.add(["c@example.org"], next_attempt=due)
        assert await _rounds_after(h) == rounds_a
        # One due earlier still wakes it.
        await h.add(["d@example.org"], next_attempt=due - timedelta(seconds=1))
        assert await _rounds_after(h) > rounds_a
