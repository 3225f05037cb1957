"""Hold-rule operations for the control commands and the admin API.

Registered as ``ctx.service(HoldRuleService)`` so other plugins (an admin API)
use the same code path without importing this package.

Adding a rule also puts existing matching queue entries on hold, as
mox does. The rule is committed first; from then on the in-transaction
``moxtrio_queue_adding`` hook holds every new entry, and the entries that
existed before are held through the core queue's ``hold_matching`` with the
same :func:`rule_matches` the hook uses, so new and existing entries are
matched by one function (AND over the set conditions). No matching entry can
slip between the two steps.
"""

from __future__ import annotations

import logging

from core.store.models import utcnow
from moxtrio import PluginContext
from plugins.holdrules.rules import (
    HoldRule,
    delete_rule,
    insert_rule,
    list_rules,
    make_rule,
    rule_matches,
)

log = logging.getLogger("moxtrio.plugins.holdrules")


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
        stored = await self.ctx.store.write(lambda conn: insert_rule(conn, rule, utcnow()))
        log.info("hold rule added: %s", stored)
        n = await self.ctx.queue.hold_matching(lambda e: rule_matches(stored, e))
        log.info("hold rule %d: %s existing messages put on hold", stored.id, n)
        return stored

    async def remove(self, rule_id: int) -> None:
        """Remove a rule; messages it held stay on hold.

        Raises :class:`plugins.holdrules.rules.HoldRuleNotFound`.
        """
        await self.ctx.store.write(lambda conn: delete_rule(conn, rule_id))
        log.info("hold rule %d removed", rule_id)

