"""The webhook queue's state changes, each inside the caller's transaction.

Queueing (with superseding), starting an attempt (backoff persisted before
the request, so a crash never causes a burst of retries), finishing it
(retire on success or after the 12th attempt), admin cancel and the
retired cleanup. Network calls never happen here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from core.cluster import lease as leases
from core.cluster.lease import serialize_claims, skip_locked
from core.cluster.node import now_us
from core.store.models import from_db_time, to_db_time
from core.store.sql import Connection
from plugins.webhooks.backoff import MAX_ATTEMPTS, hook_backoff
from plugins.webhooks.destination import redact_url
from plugins.webhooks.records import (
    DELIVERING,
    Hook,
    HookResult,
    RetiredHook,
    delete_hook,
    get_hook,
    get_retired,
    insert_hook,
    insert_retired,
    save_hook,
    save_retired_results,
)
from plugins.webhooks.redelivery import originals

#: Retired hooks of an account that is no longer configured are kept this long.
UNKNOWN_ACCOUNT_KEEP = timedelta(days=7)
CANCELED = "canceled by admin"
#: Due hooks looked at per claim (one per URL is taken).
CLAIM_SCAN = 1000


def keep_period(config: Any, account: str) -> timedelta | None:
    """How long retired hooks of ``account`` are kept; None = not kept."""
    acc = config.account(account)
    if acc is None:
        return UNKNOWN_ACCOUNT_KEEP
    period = acc.KeepRetiredWebhookPeriod
    if not period or period <= timedelta(0):
        return None
    return period


def _retire(
    conn: Connection,
    config: Any,
    hook: Hook,
    *,
    success: bool,
    last_activity: datetime,
    superseded_by_id: int = 0,
) -> None:
    delete_hook(conn, hook.id)
    period = keep_period(config, hook.account)
    if period is None:
        return
    insert_retired(
        conn,
        RetiredHook.from_hook(
            hook,
            success=success,
            last_activity=last_activity,
            keep_until=last_activity + period,
            superseded_by_id=superseded_by_id,
        ),
    )


def queue_hook(conn: Connection, config: Any, hook: Hook, now: datetime) -> int:
    """Insert a new hook; an older queued hook for the same message is superseded."""
    hook_id = insert_hook(conn, hook)
    if hook.queue_msg_id > 0:
        rows = conn.execute(
            "SELECT * FROM webhook_queue WHERE queue_msg_id = ? AND id != ?",
            (hook.queue_msg_id, hook_id),
        ).fetchall()
        for row in rows:
            old = Hook.from_row(row)
            _retire(conn, config, old, success=False, last_activity=now, superseded_by_id=hook_id)
    return hook_id


TABLE = "webhook_queue"


@dataclass
class Claim:
    """What one claim transaction did."""

    hooks: list[Hook]
    #: Earliest NextAttempt of a free hook whose URL is free (for the idle sleep).
    next_due: datetime | None
    #: Earliest expiry of another node's lease (a takeover may be due then), wall-clock us.
    next_expiry: int | None = None
    #: Hooks of nodes whose lease expired, due again now.
    taken_over: int = 0
    #: A due hook waits for its URL, in flight on another node (look again soon).
    blocked: bool = False
    #: Another node held the claim lock: nothing was looked at (claim again very soon).
    contended: bool = False


def start_attempts(
    conn: Connection,
    now: datetime,
    busy_urls: set[str],
    limit: int,
    rng: random.Random,
    node: str = "",
    lease_until: int = 0,
) -> Claim:
    """Claim up to ``limit`` due hooks (one per URL, none for a URL in flight).

    In flight means on any node sharing the store: a URL with a live lease
    is busy cluster-wide, so one receiver gets one request at a time from
    the whole cluster, as from one mox. Hooks whose lease expired (their
    node died) are released first, as at start-up. For each claimed hook:
    Attempts += 1, NextAttempt = now + backoff, a "delivering..." result
    appended, the node's lease set, saved.
    """
    if not serialize_claims(conn, TABLE):
        # Another node is claiming right now: nothing looked at, try again soon.
        return Claim([], None, contended=True)
    at = now_us()
    taken_over = _release(conn, now, leases.expired(conn, TABLE, at, mine=node))
    remote = {
        str(r[0])
        for r in conn.execute(
            "SELECT DISTINCT url FROM webhook_queue WHERE lease_node != '' AND lease_until >= ?"
            " AND lease_node != ?",
            (at, node),
        ).fetchall()
    }
    taken = set(busy_urls) | remote
    claimed: list[Hook] = []
    blocked = False
    if limit > 0:
        rows = conn.execute(
            "SELECT * FROM webhook_queue WHERE next_attempt <= ? AND lease_node = ''"
            f" ORDER BY next_attempt, id LIMIT ?{skip_locked(conn)}",
            (to_db_time(now), CLAIM_SCAN),
        ).fetchall()
        for row in rows:
            if row["url"] in taken:
                blocked = blocked or row["url"] in remote
                continue
            hook = Hook.from_row(row)
            taken.add(hook.url)
            claimed.append(hook)
            if len(claimed) >= limit:
                break
    refs = originals(conn, [h.id for h in claimed])
    for hook in claimed:
        hook.redelivery_of = refs.get(hook.id, 0)
        hook.next_attempt = now + hook_backoff(hook.attempts, rng)
        hook.attempts += 1
        hook.results.append(HookResult(start=now, url=redact_url(hook.url), error=DELIVERING))
        save_hook(conn, hook)
    if node:
        leases.take(conn, TABLE, [h.id for h in claimed], node, lease_until)
    marks = ", ".join("?" for _ in taken)
    where = f" AND url NOT IN ({marks})" if taken else ""
    row = conn.execute(
        f"SELECT MIN(next_attempt) FROM webhook_queue WHERE lease_node = ''{where}", tuple(taken)
    ).fetchone()
    next_due = None if row is None or row[0] is None else from_db_time(row[0])
    row = conn.execute(
        "SELECT MIN(lease_until) FROM webhook_queue WHERE lease_node != '' AND lease_node != ?",
        (node,),
    ).fetchone()
    expiry = None if row is None or row[0] is None else int(row[0])
    return Claim(claimed, next_due, expiry, taken_over, blocked)


@dataclass
class AttemptOutcome:
    """What one POST came to."""

    success: bool
    code: int = 0
    error: str = ""
    response: str = ""
    duration_ns: int = 0
    start: datetime | None = None


def finish_attempt(
    conn: Connection,
    config: Any,
    hook_id: int,
    outcome: AttemptOutcome,
    node: str = "",
    attempts: int = 0,
) -> str:
    """Record an attempt's outcome. Returns what became of the hook.

    With ``node`` (the claiming node and the attempt count after its claim),
    the outcome is recorded only while that node still holds the hook for
    that attempt. ``lost``: another node took the hook over after this
    node's lease expired, settled this attempt as interrupted and retries
    it with the same webhook ID; nothing is recorded (the receiver may see
    the ID twice, which is what the ID is for).

    ``retired``: success or 12th failure; ``queued``: waits for its retry;
    ``superseded``: the hook left the queue meanwhile (superseded or
    canceled) and the outcome went to its retired record with
    "(superseded)" added; ``gone``: nothing left to record it on.
    """
    hook = get_hook(conn, hook_id)
    if hook is not None and node and not leases.held_by(conn, TABLE, {hook_id: attempts}, node):
        return "lost"
    if hook is None:
        retired = get_retired(conn, hook_id)
        if retired is None:
            return "gone"
        retired.results.append(
            HookResult(
                start=outcome.start or retired.last_activity,
                duration_ns=outcome.duration_ns,
                url=retired.url,
                success=outcome.success,
                code=outcome.code,
                error=(outcome.error + " (superseded)").lstrip(),
                response=outcome.response,
            )
        )
        save_retired_results(conn, retired)
        return "superseded"
    last = hook.last_result()
    if last is None or last.error != DELIVERING:
        last = HookResult(start=hook.next_attempt, url=redact_url(hook.url))
        hook.results.append(last)
    last.duration_ns = outcome.duration_ns
    last.success = outcome.success
    last.code = outcome.code
    last.error = "" if outcome.success else outcome.error
    last.response = outcome.response
    if outcome.success or hook.attempts >= MAX_ATTEMPTS:
        _retire(conn, config, hook, success=outcome.success, last_activity=last.start)
        return "retired"
    save_hook(conn, hook)
    leases.clear(conn, TABLE, [hook.id])
    return "queued"


INTERRUPTED = "attempt interrupted: server stopped before its outcome was recorded"


def release_interrupted(conn: Connection, now: datetime, node: str = "", *, shared: bool = False) -> int:
    """At start-up: attempts a stop or crash cut short are due again at once.

    Their outcome is unknown (the receiver may have it), so the attempt
    counts and the retry carries the same webhook ID; receivers deduplicate
    by ID. Without this, such a hook would wait out its backoff. On a store
    shared by several nodes (``shared``) only hooks whose lease expired or
    that ``node`` held are released, never what a live node is posting.
    """
    if shared:
        ids = leases.expired(conn, TABLE, now_us(), mine=node, include_mine=True)
    else:
        ids = [
            int(r[0])
            for r in conn.execute(
                "SELECT id FROM webhook_queue WHERE results LIKE ? OR lease_node != ''",
                (f"%{DELIVERING}%",),
            ).fetchall()
        ]
    return _release(conn, now, ids)


def _release(conn: Connection, now: datetime, ids: list[int]) -> int:
    """Settle interrupted attempts of these hooks (due now) and free their leases."""
    n = 0
    for hook_id in ids:
        hook = get_hook(conn, hook_id)
        if hook is None:
            continue
        last = hook.last_result()
        if last is not None and last.error == DELIVERING:
            last.error = INTERRUPTED
            hook.next_attempt = now
            save_hook(conn, hook)
            n += 1
    leases.clear(conn, TABLE, ids)
    return n


def cancel_hooks(conn: Connection, config: Any, ids: list[int], now: datetime) -> int:
    """Admin cancel: remove from the queue, retire with a "canceled by admin" result."""
    n = 0
    for hook_id in ids:
        hook = get_hook(conn, hook_id)
        if hook is None:
            continue
        hook.results.append(HookResult(start=now, url=redact_url(hook.url), error=CANCELED))
        _retire(conn, config, hook, success=False, last_activity=now)
        n += 1
    return n


def cleanup_retired(conn: Connection, now: datetime) -> int:
    """Delete retired hooks whose KeepUntil passed; returns how many."""
    cur = conn.execute("DELETE FROM webhook_retired WHERE keep_until < ?", (to_db_time(now),))
    return cur.rowcount
