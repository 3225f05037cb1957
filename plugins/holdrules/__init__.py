"""The holdrules plugin: queue hold rules, whose conditions always combine with AND.

A hold rule keeps matching outgoing messages in the queue until an admin
releases them. This module only wires hooks; the rule record and matching
live in :mod:`plugins.holdrules.rules`, the operations in
:mod:`plugins.holdrules.service`, the control commands in
:mod:`plugins.holdrules.commands`.
"""

from __future__ import annotations

from typing import Any

from core.store.sql import Connection
from moxtrio import CtlCommand, HoldRuleAdmin, Migration, PluginContext, hookimpl
from plugins.holdrules.commands import ctl_commands
from plugins.holdrules.rules import MIGRATIONS, any_rule_matches, list_rules
from plugins.holdrules.service import HoldRuleService

__all__ = [
    "HoldRuleService",
    "moxtrio_configure",
    "moxtrio_ctl_commands",
    "moxtrio_migrations",
    "moxtrio_queue_adding",
]


@hookimpl
def moxtrio_migrations() -> list[Migration]:
    return list(MIGRATIONS)


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    """Offer the rule operations to other plugins (an admin API) as a service."""
    svc = HoldRuleService(ctx)
    ctx.provide(HoldRuleService, svc)
    ctx.provide(HoldRuleAdmin, svc)  # type: ignore[type-abstract]


@hookimpl
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    return ctl_commands()


@hookimpl
def moxtrio_queue_adding(conn: Connection, entries: list[Any]) -> None:
    """Mark new entries held when a rule matches them (in the adding transaction).

    Reading the rules in the same transaction means a rule committed before
    this add is always seen, and its ``add`` then only needs to care about
    entries that existed before it.
    """
    rules = list_rules(conn)
    if not rules:
        return
    for entry in entries:
        if any_rule_matches(rules, entry):
            entry.hold = True
