"""The webhook queue's size, offered to metrics (read at scrape time;
registered when the plugin is configured, so only loaded plugins offer theirs)."""

from __future__ import annotations

from core.metrics import Gauge
from core.store.sql import Connection


def _size(conn: Connection) -> dict[tuple[str, ...], float]:
    return {(): float(conn.execute("SELECT COUNT(*) FROM webhook_queue").fetchone()[0])}


GAUGE = Gauge("moxtrio_webhook_queue_messages", "Webhooks waiting to be delivered.", (), _size)
