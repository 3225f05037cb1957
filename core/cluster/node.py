"""This process as a member of a cluster: its node id and lease length.

The node id marks the rows this process claims (``lease_node``). The
default is the host name plus a random suffix chosen at each start, so two
processes on one host, or a restarted process, never take each other's
leases for their own: a restarted node leaves what its previous life held
until those leases expire, exactly as another node would. An administrator
who wants a restarted node to settle its previous leases at once gives it a
stable ``NodeID`` in ``<config dir>/plugins/cluster.yaml``.

Leases are counted in wall-clock time, not the queue's clock: they measure
whether a process is alive, and a test's fake clock that jumps hours ahead
must not make a running delivery look abandoned.
"""

from __future__ import annotations

import re
import secrets
import socket
import time
from dataclasses import dataclass, field
from typing import Any

from core.cluster.wakeup import Wakeups

#: Default lease length: a node that stops renewing loses its claims after this.
DEFAULT_LEASE = 60.0
MIN_LEASE = 2.0
_NODE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def default_node_id() -> str:
    """``<host>-<6 hex digits>``: unique per process start."""
    host = socket.gethostname().split(".")[0] or "node"
    host = re.sub(r"[^A-Za-z0-9._-]", "-", host)[:60]
    return f"{host}-{secrets.token_hex(3)}"


def now_us() -> int:
    """Wall-clock microseconds since the epoch (the unit of ``lease_until``)."""
    return time.time_ns() // 1000


@dataclass
class ClusterNode:
    """Who this process is in the cluster, and how it claims and wakes others."""

    node_id: str = field(default_factory=default_node_id)
    #: Seconds a claim lasts without renewal.
    lease: float = DEFAULT_LEASE
    wakeups: Wakeups = field(default_factory=Wakeups)
    #: More than one node may share the store (PostgreSQL). On SQLite the
    #: store belongs to one process, so every lease in it was this
    #: process's previous life's and may be settled at start.
    shared: bool = False

    @property
    def renew_every(self) -> float:
        """Renew three times per lease: two missed renewals still keep it."""
        return self.lease / 3

    def lease_until(self) -> int:
        """``lease_until`` for a claim or renewal made now."""
        return now_us() + int(self.lease * 1_000_000)


class NodeSettingsError(ValueError):
    pass


def load_node(settings: dict[str, Any], *, shared: bool) -> ClusterNode:
    """The node from ``plugins/cluster.yaml`` (``NodeID``, ``LeaseSeconds``)."""
    node_id = str(settings.get("NodeID") or "") or default_node_id()
    if not _NODE_ID.match(node_id):
        raise NodeSettingsError(
            f"cluster NodeID {node_id!r}: use letters, digits and . _ : - (at most 100)"
        )
    try:
        lease = float(settings.get("LeaseSeconds", DEFAULT_LEASE))
    except (TypeError, ValueError):
        raise NodeSettingsError(f"cluster LeaseSeconds {settings.get('LeaseSeconds')!r} is not a number") from None
    if lease < MIN_LEASE:
        raise NodeSettingsError(f"cluster LeaseSeconds must be at least {MIN_LEASE:g}, got {lease:g}")
    return ClusterNode(node_id=node_id, lease=lease, shared=shared)
