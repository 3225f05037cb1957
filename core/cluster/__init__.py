"""Several nodes on one database: node identity, leases and wake-ups.

Every node of a cluster runs the same server on the same store. What one
node must not do twice with another (deliver a queue entry, post a
webhook) is claimed with a lease (:mod:`core.cluster.lease`), and work one
node adds is announced to the others (:mod:`core.cluster.wakeup`). On
SQLite there is one node, and the same code paths run with one member.
"""

from core.cluster.node import ClusterNode, default_node_id, load_node
from core.cluster.wakeup import Wakeups

__all__ = ["ClusterNode", "Wakeups", "default_node_id", "load_node"]
