"""Making this process a node at start: settings, the log line, the wake-ups."""

from __future__ import annotations

import logging
from typing import Any

from core.cluster.node import ClusterNode, NodeSettingsError, load_node

log = logging.getLogger("moxtrio.cluster")

SETTINGS = "cluster"


def node_from_settings(ctx: Any) -> ClusterNode:
    """The node of this server from ``plugins/cluster.yaml``; logs who it is.

    A store that several processes may share (PostgreSQL) makes the node
    careful at start: it settles only the leases that expired.
    """
    from core.plugin_api import PluginConfigError

    shared = getattr(ctx.store, "dialect", "sqlite") == "postgres"
    try:
        node = load_node(ctx.plugin_settings(SETTINGS), shared=shared)
    except NodeSettingsError as exc:
        raise PluginConfigError(f"plugins/{SETTINGS}.yaml: {exc}") from exc
    node.wakeups.bind()
    log.info(
        "cluster node %s (lease %gs, store %s)",
        node.node_id,
        node.lease,
        "shared by every node" if shared else "of this node only",
    )
    return node
