"""Queue levels offered to metrics (read at scrape time, not counted)."""

from __future__ import annotations

import sqlite3

from core.metrics import Gauge, add_gauge


def _held(conn: sqlite3.Connection) -> dict[tuple[str, ...], float]:
    return {(): float(conn.execute("SELECT COUNT(*) FROM queue WHERE hold != 0").fetchone()[0])}


def _size(conn: sqlite3.Connection) -> dict[tuple[str, ...], float]:
    return {(): float(conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0])}


add_gauge(Gauge("mox_queue_hold", "Messages in queue that are on hold.", (), _held))
add_gauge(Gauge("moxtrio_queue_messages", "Messages in the outgoing queue (one per recipient).", (), _size))
