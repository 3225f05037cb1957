"""One scheduling round's claim, in one write transaction.

On every backend, and with any number of nodes on one store, the round:

1. settles entries whose lease expired (their node died or stalled): the
   interrupted attempt counts, its result says the outcome is unknown, and
   the entry is due again at once (see :mod:`core.queue.recover`);
2. counts the delivery groups in flight per destination domain across the
   cluster (rows with a live lease) - the per-domain limit holds for the
   whole cluster, not per process;
3. picks due, unheld, unleased entries (oldest NextAttempt first; on
   PostgreSQL ``FOR UPDATE SKIP LOCKED`` under a cluster-wide claim lock),
   groups them per message and recipient domain within this node's free
   slots and the domain limits, and claims each group
   (:func:`core.queue.prepare.claim_batch`) under this node's lease.

Nothing leaves the transaction half done: a claim that commits has its
leases, its "delivering..." results and its backoff together.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.cluster import ClusterNode
from core.cluster import lease as leases
from core.cluster.node import now_us
from core.queue.prepare import Claimed, claim_batch
from core.queue.recover import settle_interrupted
from core.queue.results import Applied
from core.store.models import to_db_time

TABLE = "queue"


@dataclass
class ClaimLimits:
    """This node's free delivery slots and the cluster-wide per-domain limit."""

    free: int
    max_per_domain: int
    due_batch: int


@dataclass
class Round:
    """What a claim round did."""

    groups: list[tuple[Claimed, str]] = field(default_factory=list)
    #: Settled expired leases: files to remove after commit, events raised.
    reaped: Applied = field(default_factory=Applied)
    reaped_count: int = 0
    #: Due entries were left because of the limits (wake again soon).
    blocked: bool = False
    #: Another node held the claim lock: nothing was looked at.
    contended: bool = False


def domain_groups_in_flight(conn: Any, at_us: int) -> dict[str, int]:
    """Delivery groups (one connection each) holding a live lease, per recipient domain."""
    rows = conn.execute(
        "SELECT recipient_domain_str,"
        " COUNT(DISTINCT CASE WHEN base_id != 0 THEN base_id ELSE -id END)"
        " FROM queue WHERE lease_node != '' AND lease_until >= ?"
        " GROUP BY recipient_domain_str",
        (at_us,),
    ).fetchall()
    return {str(r[0]): int(r[1]) for r in rows}


def reap_expired(
    conn: Any,
    ctx: Any,
    now: datetime,
    at_us: int,
    *,
    loopback: bool,
    node: str,
    include_mine: bool = False,
) -> tuple[Applied, int]:
    """Settle entries whose lease expired (other nodes'; with ``include_mine``
    also those ``node`` held in a previous life); free them."""
    ids = leases.expired(conn, TABLE, at_us, mine=node, include_mine=include_mine)
    if not ids:
        return Applied(), 0
    applied, _ = settle_interrupted(conn, ctx, ids, now, loopback=loopback, retry_now=True)
    leases.clear(conn, TABLE, ids)
    return applied, len(ids)


def _due(conn: Any, now: datetime, saturated: list[str], limit: int) -> list[tuple[int, int, str]]:
    """Due free entries, leaving out domains at their limit (they would only
    crowd the others out of the batch)."""
    q = (
        "SELECT id, base_id, recipient_domain_str FROM queue"
        " WHERE hold = 0 AND next_attempt <= ? AND lease_node = ''"
    )
    args: list[Any] = [to_db_time(now)]
    if saturated:
        q += f" AND recipient_domain_str NOT IN ({', '.join('?' for _ in saturated)})"
        args += saturated
    q += f" ORDER BY next_attempt, id LIMIT ?{leases.skip_locked(conn)}"
    args.append(limit)
    rows = conn.execute(q, args).fetchall()
    return [(int(r[0]), int(r[1]), str(r[2])) for r in rows]


def work_waiting(conn: Any, now: datetime, at_us: int, node: str) -> bool:
    """Read-only pre-check: anything due and free, or a lease expired?"""
    row = conn.execute(
        "SELECT 1 FROM queue WHERE hold = 0 AND next_attempt <= ? AND lease_node = '' LIMIT 1",
        (to_db_time(now),),
    ).fetchone()
    if row is not None:
        return True
    row = conn.execute(
        "SELECT 1 FROM queue WHERE lease_node != '' AND lease_until < ? AND lease_node != ?"
        " LIMIT 1",
        (at_us, node),
    ).fetchone()
    return row is not None


def plan_groups(
    rows: list[tuple[int, int, str]], busy: dict[str, int], limits: ClaimLimits
) -> tuple[list[tuple[list[int], str]], bool]:
    """Group due rows per (message, domain) within the free slots and domain limits."""
    groups: dict[tuple[int, str], list[int]] = {}
    singles: list[tuple[list[int], str]] = []
    starting: dict[str, int] = {}
    free = limits.free
    blocked = False
    for rid, base_id, domain in rows:
        if base_id and (base_id, domain) in groups:
            groups[(base_id, domain)].append(rid)
            continue
        if free <= 0 or busy.get(domain, 0) + starting.get(domain, 0) >= limits.max_per_domain:
            blocked = True
            continue
        starting[domain] = starting.get(domain, 0) + 1
        free -= 1
        if base_id:
            groups[(base_id, domain)] = [rid]
        else:
            singles.append(([rid], domain))
    return [(ids, key[1]) for key, ids in groups.items()] + singles, blocked


def claim_round(
    conn: Any,
    ctx: Any,
    node: ClusterNode,
    now: datetime,
    limits: ClaimLimits,
    rng: random.Random,
    *,
    loopback: bool,
) -> Round:
    """Reap, count, pick and claim (in the caller's write transaction)."""
    rnd = Round()
    if not leases.serialize_claims(conn, TABLE):
        rnd.blocked = rnd.contended = True  # another node is claiming: again shortly
        return rnd
    at = now_us()
    rnd.reaped, rnd.reaped_count = reap_expired(
        conn, ctx, now, at, loopback=loopback, node=node.node_id
    )
    if limits.free <= 0:
        return rnd
    busy = domain_groups_in_flight(conn, at)
    saturated = sorted(d for d, n in busy.items() if n >= limits.max_per_domain)
    rnd.blocked = bool(saturated)
    planned, blocked = plan_groups(_due(conn, now, saturated, limits.due_batch), busy, limits)
    rnd.blocked = rnd.blocked or blocked
    until = node.lease_until()
    for ids, domain in planned:
        claimed = claim_batch(conn, ctx, ids[0], ids, now, rng)
        if claimed is None:
            continue
        leases.take(conn, TABLE, claimed.started, node.node_id, until)
        rnd.groups.append((claimed, domain))
    return rnd
