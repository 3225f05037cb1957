"""Webhook leases: several nodes on one store. A node that dies while posting
loses its hooks after the lease, another node posts them again with the same
webhook ID; a starting node leaves hooks a live node is posting alone; an
outcome is recorded only under the lease that made the attempt."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import trio

from core.cluster import ClusterNode
from core.cluster.node import now_us
from plugins.webhooks import queue_ops
from tests.webhooks.helpers import START, account_edit, event, harness, receiver


def node(name: str, lease: float = 60.0) -> ClusterNode:
    return ClusterNode(node_id=name, lease=lease, shared=True)


async def claim_as(h: Any, who: ClusterNode) -> queue_ops.Claim:
    """A node's claim without the post that follows (it dies)."""
    until = who.lease_until()
    return await h.ctx.store.write(
        lambda c: queue_ops.start_attempts(c, START, set(), 10, random.Random(1), who.node_id, until)
    )


async def test_hook_of_a_dead_node_is_posted_again_with_its_id(tmp_path: Path) -> None:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"))
        async with harness(tmp_path, edit, start=False, node=node("node-b")) as h:
            await h.raise_event(event())
            claim = await claim_as(h, node("node-dead", lease=0.5))
            [hook] = claim.hooks
            async with trio.open_nursery() as n:
                await n.start(h.svc.run)
                # The live lease keeps the running node off the hook.
                rows = await h.rows("SELECT lease_node FROM webhook_queue")
                assert rows == [("node-dead",)]
                (req,) = await rec.wait(1, timeout=15)
                await h.wait_rows("SELECT id FROM webhook_retired")
                n.cancel_scope.cancel()
            assert req.header("X-Mox-Webhook-ID") == str(hook.id)
            assert req.header("X-Mox-Webhook-Attempt") == "2"
            [retired] = await h.rows("SELECT results, success FROM webhook_retired")
            assert retired[1] == 1 and queue_ops.INTERRUPTED in retired[0]


async def test_start_up_leaves_a_live_nodes_hook_alone(tmp_path: Path) -> None:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"))
        async with harness(tmp_path, edit, start=False, node=node("node-b")) as h:
            await h.raise_event(event())
            await claim_as(h, node("node-alive"))
            released = await h.ctx.store.write(
                lambda c: queue_ops.release_interrupted(c, START, "node-b", shared=True)
            )
            assert released == 0
            [(lease, results)] = await h.rows("SELECT lease_node, results FROM webhook_queue")
            assert lease == "node-alive" and "delivering..." in results
            # On a store of its own (SQLite, one node) everything is from a previous life.
            released = await h.ctx.store.write(
                lambda c: queue_ops.release_interrupted(c, START, "node-b", shared=False)
            )
            assert released == 1
            [(lease, results)] = await h.rows("SELECT lease_node, results FROM webhook_queue")
            assert lease == "" and queue_ops.INTERRUPTED in results


async def test_outcome_under_a_lost_lease_is_not_recorded(tmp_path: Path) -> None:
    edit = account_edit(out_url="http://127.0.0.1:9/out")
    async with harness(tmp_path, edit, start=False, node=node("node-b")) as h:
        await h.raise_event(event())
        [hook] = (await claim_as(h, node("node-slow", lease=0.05))).hooks
        while now_us() < (await h.rows("SELECT lease_until FROM webhook_queue"))[0][0]:
            await trio.sleep(0.02)
        taken = await claim_as(h, node("node-b"))
        assert taken.taken_over == 1 and [x.id for x in taken.hooks] == [hook.id]
        ok = queue_ops.AttemptOutcome(success=True, code=200, start=START)
        state = await h.ctx.store.write(
            lambda c: queue_ops.finish_attempt(c, h.ctx.config, hook.id, ok, "node-slow", hook.attempts)
        )
        assert state == "lost"
        [(lease, attempts, results)] = await h.rows(
            "SELECT lease_node, attempts, results FROM webhook_queue"
        )
        assert lease == "node-b" and attempts == 2
        assert [r["error"] for r in json.loads(results)] == [queue_ops.INTERRUPTED, "delivering..."]
