"""Exactly-once delivery when the queue delivers to this server's own listener.

A delivery plugin may deliver over SMTP to our own delivery listener (a
development server delivers all its mail to itself that way). The
message is stored in the mailbox in one transaction and the queue records
the outcome in another; a crash (or a full disk) between the two would,
with only the "delivering..." claim to go on, make the queue deliver the
message again after the backoff. Because both ends are this process, the
gap can be closed: the delivering side registers its client address (local
IP and port) with the queue entries of the transaction, and the receiving
side, in the same transaction that stores the message, changes those
entries' "delivering..." result into :data:`DELIVERED_UNRECORDED`. The queue
then knows for certain, after a restart too, which interrupted attempts
were delivered (record them as delivered) and which were not (retry them
at once, as if the attempt had never started).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.store import queue_rows
from core.store.models import QueueEntry
from core.store.sql import Connection

DELIVERING = "delivering..."
DELIVERED_UNRECORDED = "delivered, result not yet recorded"

Recipient = tuple[str, str]  # (localpart, domain lowercased)


def _recipient_keys(e: QueueEntry) -> set[Recipient]:
    return {
        (e.recipient_localpart, e.recipient_domain.lower()),
        (e.recipient_localpart, e.recipient_domain_str.lower()),
    }


@dataclass
class LoopbackDeliveries:
    """Client addresses of the queue's SMTP connections to our own listener.

    Only touched from the trio thread; the receiving side looks its entries
    up before its store transaction and passes the IDs in.
    """

    by_addr: dict[tuple[str, int], list[QueueEntry]] = field(default_factory=dict)
    #: Set by a plugin at configure time when it delivers the queue's mail to
    #: our own listener: the listener then exempts loopback peers from its
    #: connection limits, and an interrupted attempt without a delivered mark
    #: is known not to have been delivered.
    active: bool = False

    def register(self, local_ip: str, local_port: int, entries: list[QueueEntry]) -> None:
        self.by_addr[(local_ip, local_port)] = list(entries)

    def unregister(self, local_ip: str, local_port: int) -> None:
        self.by_addr.pop((local_ip, local_port), None)

    def entries_for(self, remote_ip: str, remote_port: int, recipients: list[Recipient]) -> list[int]:
        """IDs of the queue entries a received message delivers (empty: not from our queue)."""
        entries = self.by_addr.get((remote_ip, remote_port))
        if not entries:
            return []
        wanted = {(lp, d.lower()) for lp, d in recipients}
        return [e.id for e in entries if _recipient_keys(e) & wanted]


def mark_delivered(conn: Connection, entry_ids: list[int]) -> None:
    """In the receiving transaction: these entries' current attempts delivered."""
    for entry_id in entry_ids:
        try:
            e = queue_rows.get_queue_entry(conn, entry_id)
        except queue_rows.QueueEntryNotFound:
            continue
        last = e.results[-1] if e.results else None
        if last is not None and last.error == DELIVERING and not last.success:
            last.error = DELIVERED_UNRECORDED
            queue_rows.update_queue_entry(conn, e)


def in_progress(e: QueueEntry) -> str | None:
    """The marker of an attempt that started but whose outcome is not recorded."""
    last = e.results[-1] if e.results else None
    if last is None or last.success or last.error not in (DELIVERING, DELIVERED_UNRECORDED):
        return None
    return last.error
