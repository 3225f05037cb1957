"""Hold-rule operations for the control commands and the admin API.

Registered as ``ctx.services["holdrules"]`` so other plugins (an admin API)
use the same code path without importing this package.

Adding a rule also puts existing matching queue entries on hold (spec 04
§2.2) through the core queue service (``ctx.services["queue"].hold(filter)``)
so that the queue's own bookkeeping (metrics, waking the delivery loop)
happens in one place. The rule is committed first; from then on the
in-transaction ``moxtrio_queue_adding`` hook holds every new entry, and the
entries that existed before are selected by the rule's AND conditions and
held by ID. No matching entry can slip between the two.
"""

from __future__ import annotations

import importlib
import logging
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from core.plugin_api import PluginContext
from core.store.models import utcnow
from plugins.holdrules.rules import (
    HoldRule,
    delete_rule,
    insert_rule,
    list_rules,
    make_rule,
    matching_queue_ids,
)

log = logging.getLogger("moxtrio.plugins.holdrules")


@dataclass
class _FallbackFilter:
    """Stand-in with QueueFilter's field names, used only when ``core.queue.admin``
    cannot be imported (no core queue present, e.g. a test's fake queue service)."""

    IDs: list[int] = field(default_factory=list)
    Account: str = ""


def make_queue_filter(**fields: Any) -> Any:
    """A ``core.queue.admin.QueueFilter`` with ``fields`` (spec 03 §9.1 names)."""
    try:
        mod = importlib.import_module("core.queue.admin")
    except ImportError:
        return _FallbackFilter(**fields)
    return mod.QueueFilter(**fields)


def hold_filter(rule: HoldRule, ids: list[int]) -> Any | None:
    """The queue filter that selects what ``rule`` holds among existing entries.

    All-empty rule: the empty filter (everything). Account only: ``Account``.
    With a domain condition: the queue filter cannot say "sender domain
    equals" (``From``/``To`` are substrings and OR-ed), so the matching IDs,
    selected by the rule's AND conditions, plus ``Account``. ``None`` when
    nothing matches (an empty ``IDs`` would mean "no ID condition").
    """
    if rule.is_all:
        return make_queue_filter()
    if rule.sender_domain.is_zero and rule.recipient_domain.is_zero:
        return make_queue_filter(Account=rule.account)
    if not ids:
        return None
    if rule.account:
        return make_queue_filter(IDs=list(ids), Account=rule.account)
    return make_queue_filter(IDs=list(ids))


class HoldRuleService:
    """List, add and remove hold rules of a running server."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def list(self) -> list[HoldRule]:
        return await self.ctx.store.read(list_rules)

    async def add(
        self, account: str = "", sender_domain: str = "", recipient_domain: str = ""
    ) -> HoldRule:
        """Add a rule and hold the existing entries it matches; returns the stored rule.

        Raises :class:`plugins.holdrules.rules.HoldRuleError` for a domain
        that does not parse (nothing is stored then).
        """
        rule = make_rule(account, sender_domain, recipient_domain)
        queue = self.ctx.services.get("queue")

        def write(conn: sqlite3.Connection) -> tuple[HoldRule, list[int]]:
            stored = insert_rule(conn, rule, utcnow())
            ids = [] if stored.is_all else matching_queue_ids(conn, stored)
            if queue is None:
                # No queue service (a store used without a running queue):
                # hold in the same transaction, as mox does.
                _hold_directly(conn, stored, ids)
            return stored, ids

        stored, ids = await self.ctx.store.write(write)
        log.info("hold rule added: %s", stored)
        if queue is not None:
            filt = hold_filter(stored, ids)
            if filt is not None:
                n = await queue.hold(filt)
                log.info("hold rule %d: %s existing messages put on hold", stored.id, n)
        return stored

    async def remove(self, rule_id: int) -> None:
        """Remove a rule; messages it held stay on hold (spec 04 §3).

        Raises :class:`plugins.holdrules.rules.HoldRuleNotFound`.
        """
        await self.ctx.store.write(lambda conn: delete_rule(conn, rule_id))
        log.info("hold rule %d removed", rule_id)


def _hold_directly(conn: sqlite3.Connection, rule: HoldRule, ids: list[int]) -> None:
    if rule.is_all:
        conn.execute("UPDATE queue SET hold = 1 WHERE hold = 0")
        return
    conn.executemany("UPDATE queue SET hold = 1 WHERE id = ?", [(i,) for i in ids])
