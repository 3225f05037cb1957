"""Queue levels offered to metrics (read at scrape time, not counted)."""

from __future__ import annotations

from core.metrics import Gauge, add_gauge
from core.store.sql import Connection


def _held(conn: Connection) -> dict[tuple[str, ...], float]:
    return {(): float(conn.execute("SELECT COUNT(*) FROM queue WHERE hold != 0").fetchone()[0])}


def _size(conn: Connection) -> dict[tuple[str, ...], float]:
    return {(): float(conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0])}


add_gauge(Gauge("mox_queue_hold", "Messages in queue that are on hold.", (), _held))
add_gauge(Gauge("moxtrio_queue_messages", "Messages in the outgoing queue (one per recipient).", (), _size))
