"""PostgreSQL wake-ups between nodes: ``NOTIFY`` in the writer's transaction,
``LISTEN`` on a dedicated connection in a thread of each node.

PostgreSQL delivers a notification only when the transaction that sent it
commits, and to every listening session, this node's included: each
carries its process's origin token, and a node skips its own (it woke its
subscribers when it notified). The listener thread waits
on its connection with a timeout so it notices a stop request; when the
connection breaks it reconnects with growing pauses and then wakes every
channel once, since notifications sent meanwhile are lost.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import trio

from core.cluster.wakeup import PREFIX, Wakeups

log = logging.getLogger("moxtrio.cluster")

POLL = 1.0
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 10.0


def send_notify(conn: Any, channel: str, origin: str) -> None:
    """In the writer's transaction: ``NOTIFY`` with the sender's origin token
    (channel names are checked by Wakeups)."""
    conn.execute("SELECT pg_notify(?, ?)", (channel, origin))


class PgListener:
    """The ``LISTEN`` side for one node."""

    def __init__(self, url: str, wakeups: Wakeups) -> None:
        self.url = url
        self.wakeups = wakeups
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.connected = threading.Event()

    def _listen_once(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            listening: set[str] = set()
            while not self._stop.is_set():
                # Subscribers may come later than the thread (the queue
                # starts after the listeners), and a reconnect loses what was
                # sent meanwhile: a channel is listened to within a poll
                # interval of its first subscriber, and then kicked once, so
                # its subscriber looks at what other nodes committed before.
                for ch in self.wakeups.channels:
                    if ch not in listening:
                        conn.execute(f"LISTEN {PREFIX}{ch}")  # type: ignore[arg-type]
                        listening.add(ch)
                        self.wakeups.kick_threadsafe(ch)
                self.connected.set()
                for n in conn.notifies(timeout=POLL):
                    self.wakeups.received_from_database(n.channel, n.payload)
                    if self._stop.is_set():
                        break

    def _main(self) -> None:
        import psycopg

        wait = RECONNECT_FIRST
        while not self._stop.is_set():
            try:
                self._listen_once()
                wait = RECONNECT_FIRST
            except psycopg.Error as exc:
                log.error("wake-up listener: %s; reconnecting in %.1fs", exc, wait)
                self._stop.wait(wait)
                wait = min(wait * 2, RECONNECT_MAX)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the thread once listening (bounded wait), stop it when cancelled."""
        self._thread = threading.Thread(target=self._main, name="moxtrio-listen", daemon=True)
        self._thread.start()
        try:
            await trio.to_thread.run_sync(self.connected.wait, 30.0)
            if not self.connected.is_set():
                log.error("wake-up listener not connected yet; other nodes' work is found by polling until it is")
            task_status.started()
            await trio.sleep_forever()
        finally:
            self._stop.set()


def attach(store: Any, wakeups: Wakeups) -> PgListener | None:
    """On a PostgreSQL store: notifications go into write transactions, and a
    listener (to run in the server's nursery) is returned; None on SQLite."""
    if getattr(store, "dialect", "sqlite") != "postgres":
        return None
    wakeups.send_in_transaction = send_notify
    return PgListener(store.engine.url, wakeups)
