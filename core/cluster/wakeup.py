"""Wake-ups: work one node adds (a queued message, a webhook) wakes every node.

A writer calls :meth:`Wakeups.notify` inside the transaction that adds the
work. Subscribers of the channel in this process are woken at once (their
next round is itself a transaction, ordered after this one, or they wake
again on the commit's kick). On a shared store the backend also sends the
channel to the other nodes within the same transaction, so they hear of it
only if it commits (PostgreSQL's ``NOTIFY``, delivered to a ``LISTEN``
connection on each node; see :mod:`core.cluster.listen`).

Channels are short lowercase names (``queue``, ``webhooks``).
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any

import trio

log = logging.getLogger("moxtrio.cluster")

_CHANNEL = re.compile(r"^[a-z][a-z0-9_]{0,40}$")
#: Prefix of the database notification channels, so the server's own do not
#: collide with an application's that shares the database.
PREFIX = "moxtrio_"


class Wakeups:
    """Per-process subscribers of channels, and the hand-over to the database."""

    def __init__(self) -> None:
        self._subs: dict[str, list[Callable[[], None]]] = {}
        self._token: trio.lowlevel.TrioToken | None = None
        #: Set by the store backend when notifications travel between nodes:
        #: runs in the writer's transaction (PostgreSQL: ``NOTIFY``).
        self.send_in_transaction: Callable[[Any, str, str], None] | None = None
        self.received = 0
        #: Sent with each notification so this process ignores its own: its
        #: subscribers were kicked when it notified.
        self.origin = secrets.token_hex(8)

    def bind(self) -> None:
        """Remember the trio run (call from the trio thread at start)."""
        self._token = trio.lowlevel.current_trio_token()

    @staticmethod
    def check_channel(channel: str) -> str:
        if not _CHANNEL.match(channel):
            raise ValueError(f"bad wake-up channel name {channel!r}")
        return channel

    def subscribe(self, channel: str, fn: Callable[[], None]) -> None:
        """Call ``fn`` (on the trio thread) whenever ``channel`` is notified by any node.

        Call from the trio thread: the first subscriber binds the wake-ups to
        the running trio run if :meth:`bind` was not called (tests that build
        services without a server).
        """
        if self._token is None:
            self.bind()
        self._subs.setdefault(self.check_channel(channel), []).append(fn)

    @property
    def channels(self) -> list[str]:
        return sorted(self._subs)

    def kick(self, channel: str) -> None:
        """Wake this process's subscribers of ``channel`` (trio thread only)."""
        for fn in list(self._subs.get(channel, ())):
            try:
                fn()
            except Exception:  # noqa: BLE001 - one bad subscriber must not stop the others
                log.exception("wake-up subscriber of %s failed", channel)

    def kick_threadsafe(self, channel: str) -> None:
        """Wake this process's subscribers from any thread."""
        token = self._token
        if token is None:
            return
        try:
            token.run_sync_soon(self.kick, channel)
        except trio.RunFinishedError:
            pass

    def notify(self, conn: Any, channel: str, *, local: bool = True) -> None:
        """Inside a write transaction: every node's subscribers of ``channel`` wake.

        Called from the store's writer thread (or a trio task's write
        function): the local kick is thread-safe, the cross-node send is
        part of the transaction and happens only if it commits. ``local=False``:
        this process's subscribers are not kicked here (the caller wakes them
        itself after the commit); other nodes hear it, this process skips its
        own notification (origin token).
        """
        self.check_channel(channel)
        send = self.send_in_transaction
        if send is not None:
            send(conn, PREFIX + channel, self.origin)
        if local:
            self.kick_threadsafe(channel)

    def received_from_database(self, name: str, payload: str = "") -> None:
        """A notification arrived from the database (listener thread); this
        process's own are skipped."""
        if name.startswith(PREFIX) and payload != self.origin:
            self.received += 1
            self.kick_threadsafe(name[len(PREFIX):])
