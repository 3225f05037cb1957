"""Leaving the queue: retired history with KeepUntil, and its hourly cleanup.

The hourly cleanup also prunes the submission records the daily limits read
(:func:`core.store.messages.prune_outgoing`).

A retired record keeps the queue ID and is kept for the sender account's
``KeepRetiredMessagePeriod`` (computed once, at retire time); 0 means the
entry is simply deleted; an account no longer in the config keeps 7 days.
Message files are removed after the commit that dropped their last row.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from core.store import queue_rows
from core.store.messages import prune_outgoing
from core.store.models import QueueEntry
from core.store.sql import Connection

log = logging.getLogger("moxtrio.queue")

UNKNOWN_ACCOUNT_KEEP = timedelta(days=7)


def keep_until_for(config: Any, account: str, now: datetime) -> datetime | None:
    """When a retired record of ``account`` expires; None = don't keep one."""
    acc = config.account(account)
    if acc is None:
        return now + UNKNOWN_ACCOUNT_KEEP
    period = acc.KeepRetiredMessagePeriod
    if not period or period <= timedelta(0):
        return None
    return now + period


def retire_entry(
    conn: Connection, config: Any, entry: QueueEntry, *, success: bool, now: datetime
) -> str:
    """Save the entry's final state and move it out of the queue; returns its file id.

    The caller removes the file after commit (``store.remove_unreferenced``):
    other recipients of the message may still reference it.
    """
    queue_rows.update_queue_entry(conn, entry)
    keep = keep_until_for(config, entry.sender_account, now)
    return queue_rows.retire(conn, entry.id, success=success, now=now, keep_until=keep)


def cleanup_retired(conn: Connection, now: datetime) -> int:
    """The queue's periodic cleanup: delete retired records whose KeepUntil
    passed (returns how many) and prune old submission records."""
    pruned = prune_outgoing(conn, now)
    if pruned:
        log.info("pruned %d old submission records", pruned)
    return queue_rows.delete_expired_retired(conn, now)
