"""Expiry of automatic suppressions (a moxtrio extension).

mox keeps an automatically added entry until someone removes it. A soft
problem (a full mailbox, a temporarily broken domain) then blocks the
address forever. ``<config dir>/plugins/suppression.yaml`` can give
automatic entries an expiry, for all accounts and per account::

    AutomaticExpiry: 720h          # 30 days; "" or 0 = never (the default)
    Accounts:
      mox:
        AutomaticExpiry: 168h

A lapsed entry no longer suppresses, is left out of listings, and is
replaced when the address is suppressed again; an hourly task deletes it.
Manual and imported entries lapse only when given their own ``Until``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from core.queue.timefmt import TimeExprError, parse_go_duration
from moxtrio import PluginConfigError, PluginContext

PLUGIN = "suppression"


@dataclass(frozen=True)
class ExpirySettings:
    default: timedelta | None = None
    accounts: dict[str, timedelta | None] = field(default_factory=dict)

    def for_account(self, account: str) -> timedelta | None:
        if account in self.accounts:
            return self.accounts[account]
        return self.default


def _duration(where: str, value: Any) -> timedelta | None:
    if value in (None, "", 0, "0"):
        return None
    try:
        d = parse_go_duration(str(value))
    except TimeExprError as exc:
        raise PluginConfigError(f"{PLUGIN}: {where}: {exc}") from exc
    if d <= timedelta(0):
        raise PluginConfigError(f"{PLUGIN}: {where}: must be a positive duration")
    return d


def parse_settings(data: dict[str, Any]) -> ExpirySettings:
    unknown = sorted(set(data) - {"AutomaticExpiry", "Accounts"})
    if unknown:
        raise PluginConfigError(f"{PLUGIN}: unknown setting(s): {', '.join(unknown)}")
    accounts: dict[str, timedelta | None] = {}
    raw = data.get("Accounts") or {}
    if not isinstance(raw, dict):
        raise PluginConfigError(f"{PLUGIN}: Accounts must be a mapping")
    for name, acc in raw.items():
        if not isinstance(acc, dict) or set(acc) - {"AutomaticExpiry"}:
            raise PluginConfigError(f"{PLUGIN}: Accounts.{name}: only AutomaticExpiry is known")
        accounts[str(name)] = _duration(f"Accounts.{name}.AutomaticExpiry", acc.get("AutomaticExpiry"))
    return ExpirySettings(_duration("AutomaticExpiry", data.get("AutomaticExpiry")), accounts)


def configure(ctx: PluginContext) -> None:
    """Parse the settings once and keep them in the server's context."""
    ctx.provide(ExpirySettings, parse_settings(ctx.plugin_settings(PLUGIN)))


def automatic_until(ctx: PluginContext | None, account: str, now: datetime) -> datetime | None:
    """When an automatic entry added now for ``account`` lapses (None = never)."""
    s = ctx.service(ExpirySettings) if ctx is not None else None
    d = s.for_account(account) if s is not None else None
    return None if d is None else now + d
