"""Which transport delivers an entry.

An entry's own ``Transport`` wins; otherwise routes are tried in order:
the sender account's, the sender domain's, then the global ones; the first
that matches FromDomain, ToDomain and ``MinimumAttempts <= previous
attempts`` names the transport. No match means direct delivery (name "").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.store.models import QueueEntry


@dataclass
class TransportChoice:
    """A resolved transport: ``name`` "" is direct delivery; ``config`` None
    with a non-empty name means the name is not configured."""

    name: str
    config: Any = None

    @property
    def missing(self) -> bool:
        return bool(self.name) and self.config is None


def _domain_matches(patterns: list[str], domain: str) -> bool:
    if not patterns:
        return True
    d = domain.lower().rstrip(".")
    for p in patterns:
        p = p.lower().rstrip(".")
        if p.startswith("."):
            if d.endswith(p):
                return True
        elif d == p:
            return True
    return False


def _route_matches(route: Any, entry: QueueEntry) -> bool:
    return (
        _domain_matches(list(route.FromDomain), entry.sender_domain)
        or _domain_matches(list(route.FromDomain), entry.sender_domain_str)
    ) and (
        (
            _domain_matches(list(route.ToDomain), entry.recipient_domain)
            or _domain_matches(list(route.ToDomain), entry.recipient_domain_str)
        )
        and route.MinimumAttempts <= entry.attempts
    )


def resolve_transport(config: Any, entry: QueueEntry) -> TransportChoice:
    """The transport for the entry's next attempt (``entry.attempts`` = previous attempts)."""
    transports = config.static.Transports
    if entry.transport:
        return TransportChoice(entry.transport, transports.get(entry.transport))
    routes: list[Any] = []
    acc = config.account(entry.sender_account)
    if acc is not None:
        routes += list(acc.Routes)
    if entry.sender_domain_str:
        dom = config.domain(entry.sender_domain_str)
        if dom is not None:
            routes += list(dom.Routes)
    routes += list(config.dynamic.Routes)
    for r in routes:
        if _route_matches(r, entry):
            return TransportChoice(r.Transport, transports.get(r.Transport))
    return TransportChoice("")
