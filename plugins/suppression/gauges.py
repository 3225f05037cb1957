"""Suppression list sizes per account, offered to metrics (read at scrape time;
registered when the plugin is configured, so only loaded plugins offer theirs)."""

from __future__ import annotations

from core.metrics import Gauge
from core.store.sql import Connection
from plugins.suppression.records import TABLE


def _per_account(conn: Connection) -> dict[tuple[str, ...], float]:
    rows = conn.execute(f"SELECT account, COUNT(*) FROM {TABLE} GROUP BY account")
    return {(account,): float(n) for account, n in rows}


GAUGE = Gauge("moxtrio_suppressions", "Addresses on suppression lists, per account.", ("account",), _per_account)
