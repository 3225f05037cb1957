"""Admin filters and sorting for hooks and retired hooks.

Same time expressions and keyset pagination as the message queue,
with ``Event`` (an outgoing event name or ``incoming``) instead
of the address filters.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.services import HookFilter, HookRetiredFilter
from core.sqlfilter import FilterError, Sort, Where
from core.store.sql import Connection
from moxtrio import OUTGOING_EVENTS
from plugins.webhooks.records import Hook, RetiredHook

EVENT_NAMES: tuple[str, ...] = ("incoming", *OUTGOING_EVENTS)


@dataclass
class HookSort(Sort):
    """``Field``: "" / ``NextAttempt`` (default) or ``Submitted``; descending unless Asc."""


@dataclass
class HookRetiredSort(Sort):
    """``Field``: "" / ``LastActivity`` (default) or ``Submitted``."""


def _common(q: Where, f: HookFilter | HookRetiredFilter, now: datetime) -> None:
    if f.IDs:
        q.add(f"id IN ({', '.join('?' for _ in f.IDs)})", *[int(i) for i in f.IDs])
    if f.Account:
        q.add("account = ?", f.Account)
    q.time("submitted", f.Submitted, now)
    if f.Event:
        if f.Event not in EVENT_NAMES:
            raise FilterError(f"unknown event {f.Event!r}")
        if f.Event == "incoming":
            q.add("is_incoming = 1")
        else:
            q.add("is_incoming = 0 AND outgoing_event = ?", f.Event)


_HOOK_SORT = {"": "next_attempt", "NextAttempt": "next_attempt", "Submitted": "submitted"}
_RETIRED_SORT = {"": "last_activity", "LastActivity": "last_activity", "Submitted": "submitted"}


def _limit(f: HookFilter | HookRetiredFilter) -> str:
    return f" LIMIT {int(f.Max)}" if f.Max and f.Max > 0 else ""


def select_hooks(
    conn: Connection, f: HookFilter, now: datetime, sort: HookSort | None = None
) -> list[Hook]:
    q = Where()
    _common(q, f, now)
    q.time("next_attempt", f.NextAttempt, now)
    order = q.order(_HOOK_SORT, sort)
    rows = conn.execute(f"SELECT * FROM webhook_queue{q.sql()}{order}{_limit(f)}", q.args)
    return [Hook.from_row(r) for r in rows]


def select_retired(
    conn: Connection,
    f: HookRetiredFilter,
    now: datetime,
    sort: HookRetiredSort | None = None,
) -> list[RetiredHook]:
    q = Where()
    _common(q, f, now)
    q.time("last_activity", f.LastActivity, now)
    order = q.order(_RETIRED_SORT, sort)
    rows = conn.execute(f"SELECT * FROM webhook_retired{q.sql()}{order}{_limit(f)}", q.args)
    return [RetiredHook.from_row(r) for r in rows]
