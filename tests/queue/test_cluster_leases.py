"""Leases on queue entries: several nodes on one store (two queue services on
one SQLite file here, each with its own node id), claims, the cluster-wide
per-domain limit, takeover after a node stops renewing, and what a starting
node may settle."""

from __future__ import annotations

import random
from typing import Any

import trio

from core.cluster import ClusterNode
from core.cluster.node import now_us
from core.queue.claim import ClaimLimits, claim_round
from core.queue.recover import INTERRUPTED
from tests.queue.conftest import START

LIMITS = ClaimLimits(free=10, max_per_domain=4, due_batch=100)


def node(name: str, lease: float = 60.0) -> ClusterNode:
    return ClusterNode(node_id=name, lease=lease, shared=True)


async def lease_of(h: Any, entry_id: int) -> tuple[str, int] | None:
    def get(c: Any) -> tuple[str, int] | None:
        row = c.execute("SELECT lease_node, lease_until FROM queue WHERE id = ?", (entry_id,)).fetchone()
        return None if row is None else (str(row[0]), int(row[1]))

    return await h.ctx.store.read(get)


async def claim_as(h: Any, who: ClusterNode) -> Any:
    """What a node does in its claim round, without delivering afterwards (it "dies")."""
    return await h.ctx.store.write(
        lambda c: claim_round(c, h.ctx, who, START, LIMITS, random.Random(1), loopback=False)
    )


async def test_delivery_holds_lease_until_outcome_recorded(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory(data_delay=1.0) as sink:
        h = await harness_factory(sink.port, node=node("node-a"))
        h.point_domain("example.org")
        [e] = await h.add(["rcpt@example.org"])
        with trio.fail_after(10):
            while (lease := await lease_of(h, e.id)) is None or lease[0] == "":
                await trio.sleep(0.02)
        assert lease[0] == "node-a" and lease[1] > now_us()
        await h.wait_for(lambda: h.recorder.events_for("rcpt@example.org") == ["delivered"])
        assert await h.queued(e.id) is None
        assert len(sink.messages()) == 1


async def test_domain_limit_holds_across_nodes(harness_factory: Any, sink_factory: Any) -> None:
    from core.queue.scheduler import QueueSettings

    async with sink_factory(data_delay=0.3) as sink:
        hs = []
        for name in ("node-a", "node-b"):
            h = await harness_factory(
                sink.port, node=node(name), settings=_settings(QueueSettings, sink.port, per_domain=1)
            )
            h.point_domain("example.org")
            hs.append(h)
        for i in range(4):
            await hs[i % 2].add([f"r{i}@example.org"])
        for h in hs:
            h.queue.kick()
        with trio.fail_after(30):
            while len(sink.messages()) < 4:
                await trio.sleep(0.05)
        msgs = sink.messages()
        spans = sorted((m.data_start, m.data_end) for m in msgs)
        # One connection at a time to the domain, whichever node made it.
        for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
            assert start >= end, f"two deliveries to example.org at once: {spans}"
        assert sorted(r for m in msgs for r in m.rcpt_tos) == [f"r{i}@example.org" for i in range(4)]


def _settings(cls: Any, port: int, per_domain: int) -> Any:
    from core.queue.deliver import DeliverySettings

    return cls(
        max_per_domain=per_domain,
        delivery=DeliverySettings(smtp_port=port, dial_timeout=3, session_timeout=5, read_timeout=5),
    )


async def test_expired_lease_is_taken_over_and_retried(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory() as sink:
        h = await harness_factory(sink.port, node=node("node-b"), start=False)
        h.point_domain("example.org")
        [e] = await h.add(["rcpt@example.org"])
        # A node claims the entry with a short lease and dies before delivering.
        rnd = await claim_as(h, node("node-dead", lease=0.5))
        assert [list(c.started) for c, _ in rnd.groups] == [[e.id]]
        await h.nursery.start(h.queue.run)
        # Still held while the lease runs: the running node leaves it alone.
        assert (await lease_of(h, e.id) or ("", 0))[0] == "node-dead"
        await h.wait_for(lambda: h.recorder.events_for("rcpt@example.org") == ["delivered"], timeout=20)
        r = await h.retired(e.id)
        assert [(x.success, x.error) for x in r.results] == [(False, INTERRUPTED), (True, "")]
        assert r.attempts == 2
        assert len(sink.messages()) == 1


async def test_start_up_settles_expired_leases_only(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory() as sink:
        h = await harness_factory(sink.port, node=node("node-b"), start=False)
        h.point_domain("example.org")
        [alive] = await h.add(["alive@example.org"])
        await claim_as(h, node("node-alive"))
        [gone] = await h.add(["gone@example.org"])
        await claim_as(h, node("node-gone", lease=0.05))
        await trio.sleep(0.1)
        await h.nursery.start(h.queue.run)
        await h.wait_for(lambda: h.recorder.events_for("gone@example.org") == ["delivered"], timeout=20)
        # The live node's attempt is untouched: still its lease, still in progress.
        assert (await lease_of(h, alive.id) or ("", 0))[0] == "node-alive"
        e = await h.queued(alive.id)
        assert e.results[-1].error == "delivering..." and e.attempts == 1
        assert [m.rcpt_tos for m in sink.messages()] == [["gone@example.org"]]
        r = await h.retired(gone.id)
        assert r.results[0].error == INTERRUPTED


async def test_outcome_of_lost_lease_is_not_recorded(harness_factory: Any) -> None:
    h = await harness_factory(node=node("node-slow", lease=0.05), start=False)
    [e] = await h.add(["rcpt@example.org"])
    rnd = await claim_as(h, h.ctx.cluster)
    [(claimed, _)] = rnd.groups
    await trio.sleep(0.1)
    # Another node takes the entry over after the lease expired and claims it again.
    other = await claim_as(h, node("node-b"))
    assert [list(c.started) for c, _ in other.groups] == [[e.id]]
    from core.queue.results import RecipientOutcome

    ok = [RecipientOutcome(entry_id=e.id, ok=True, code=250, start=START)]
    applied = await h.ctx.store.write(lambda c: h.queue._record(c, claimed.started, ok, {}, START))
    assert applied.events == []
    assert h.recorder.events_for("rcpt@example.org") == []
    q = await h.queued(e.id)
    assert [x.error for x in q.results] == [INTERRUPTED, "delivering..."] and q.attempts == 2
    assert (await lease_of(h, e.id) or ("", 0))[0] == "node-b"


async def test_lease_renewed_while_a_delivery_runs(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory(data_delay=2.0) as sink:
        a = await harness_factory(sink.port, node=node("node-a", lease=0.6))
        b = await harness_factory(sink.port, node=node("node-b"), start=False)
        for h in (a, b):
            h.point_domain("example.org")
        [e] = await a.add(["rcpt@example.org"])
        with trio.fail_after(10):
            while (await lease_of(a, e.id) or ("", 0))[0] != "node-a":
                await trio.sleep(0.02)
        await b.nursery.start(b.queue.run)
        await a.wait_for(lambda: a.recorder.events_for("rcpt@example.org") == ["delivered"], timeout=20)
        r = await a.retired(e.id)
        assert [(x.success, x.error) for x in r.results] == [(True, "")]
        assert b.recorder.events == [] and len(sink.messages()) == 1
