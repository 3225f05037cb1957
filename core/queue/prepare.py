"""Starting an attempt: claim the entries in one transaction.

The claim is what makes the scheduler safe: the lead entry is re-read and
must still be due and not held; its batch mates are gathered by mox's rules;
all get ``Attempts+1``, ``LastAttempt``, ``NextAttempt = now + backoff`` and
a "delivering..." result before any network activity, so a crash mid-
attempt never causes an immediate retry and a second claim of the same
entry finds it no longer due. Checks that settle recipients without a
connection (sender domain disabled, unknown transport, the plugins'
``moxtrio_delivery_precheck`` - suppression) run here too, each recipient
of the batch checked (docs/differences.md, item 8).
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.dispatch import HookFailed
from core.queue.backoff import backoff
from core.queue.results import DELIVERING, RecipientOutcome
from core.queue.routing import TransportChoice, resolve_transport
from core.store import queue_rows
from core.store.models import MsgResult, QueueEntry
from core.store.sql import Connection

log = logging.getLogger("moxtrio.queue")


@dataclass
class Claimed:
    """The outcome of a claim: who gets delivered, who is already settled."""

    batch: list[QueueEntry] = field(default_factory=list)
    settled: list[RecipientOutcome] = field(default_factory=list)
    #: Every entry whose attempt started (batch + settled), after the update.
    started: dict[int, QueueEntry] = field(default_factory=dict)
    transport: TransportChoice = field(default_factory=lambda: TransportChoice(""))


def _temporary(entry: QueueEntry, error: str, now: datetime) -> RecipientOutcome:
    return RecipientOutcome(entry_id=entry.id, ok=False, error=error, start=now)


def claim_batch(
    conn: Connection,
    ctx: Any,
    lead_id: int,
    candidate_ids: list[int],
    now: datetime,
    rng: random.Random,
) -> Claimed | None:
    """Claim the lead entry and its batch mates; None if the lead is no longer due."""
    try:
        lead = queue_rows.get_queue_entry(conn, lead_id)
    except queue_rows.QueueEntryNotFound:
        return None
    if lead.hold or lead.next_attempt > now:
        return None
    config = ctx.config
    prev = lead.attempts
    orig_next = lead.next_attempt
    choice = resolve_transport(config, lead)
    batch = [lead]
    if lead.base_id:
        for cid in candidate_ids:
            if cid == lead_id:
                continue
            try:
                e = queue_rows.get_queue_entry(conn, cid)
            except queue_rows.QueueEntryNotFound:
                continue
            if (
                e.base_id == lead.base_id
                and e.recipient_domain_str == lead.recipient_domain_str
                and e.attempts == prev
                and e.next_attempt <= orig_next
                and not e.hold
                and e.require_tls == lead.require_tls
                and resolve_transport(config, e).name == choice.name
            ):
                batch.append(e)
    delay = backoff(prev, rng)
    claimed = Claimed(transport=choice)
    for e in batch:
        e.attempts += 1
        e.last_attempt = now
        e.next_attempt = now + delay
        e.results.append(MsgResult(start=now, error=DELIVERING))
        queue_rows.update_queue_entry(conn, e)
        claimed.started[e.id] = e

    dom = config.domain(lead.sender_domain_str) if lead.sender_domain_str else None
    if dom is not None and dom.Disabled:
        claimed.settled = [
            _temporary(e, "domain of sender temporarily disabled", now) for e in batch
        ]
        return claimed
    if choice.missing:
        claimed.settled = [
            _temporary(e, f'cannot find transport "{choice.name}"', now) for e in batch
        ]
        return claimed
    for e in batch:
        try:
            verdict = ctx.hooks.first_sync("moxtrio_delivery_precheck", conn=conn, ctx=ctx, entry=e)
        except HookFailed as exc:
            log.error("delivery precheck for queue message %d: %s", e.id, exc)
            claimed.settled.append(_temporary(e, f"checking recipient: {exc}", now))
            continue
        if verdict is not None:
            out = RecipientOutcome.from_hook(e.id, verdict)
            out.start = now
            claimed.settled.append(out)
        else:
            claimed.batch.append(e)
    return claimed
