"""The webhook queue's tables (owner ``webhooks``), in the server's one database.

Hook IDs come from one sequence for outgoing and incoming hooks and a
retired hook keeps its ID, so the queue table uses
AUTOINCREMENT: an ID is never handed out twice, even after the row with the
highest ID moved to the retired table. Times are integer microseconds (as
the core tables); ``results`` and ``extra`` are JSON text.
"""

from __future__ import annotations

from moxtrio import Migration

OWNER = "webhooks"

_V1 = """
CREATE TABLE webhook_queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    queue_msg_id INTEGER NOT NULL DEFAULT 0,
    from_id TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    extra TEXT,
    account TEXT NOT NULL,
    url TEXT NOT NULL,
    authorization TEXT NOT NULL DEFAULT '',
    is_incoming INTEGER NOT NULL DEFAULT 0,
    outgoing_event TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    submitted INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt INTEGER NOT NULL,
    results TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX webhook_queue_next_attempt ON webhook_queue (next_attempt);
CREATE INDEX webhook_queue_queue_msg_id ON webhook_queue (queue_msg_id) WHERE queue_msg_id > 0;

CREATE TABLE webhook_retired (
    id INTEGER PRIMARY KEY,
    queue_msg_id INTEGER NOT NULL DEFAULT 0,
    from_id TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    extra TEXT,
    account TEXT NOT NULL,
    url TEXT NOT NULL,
    authorization INTEGER NOT NULL DEFAULT 0,
    is_incoming INTEGER NOT NULL DEFAULT 0,
    outgoing_event TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL,
    submitted INTEGER NOT NULL,
    superseded_by_id INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    results TEXT NOT NULL DEFAULT '[]',
    success INTEGER NOT NULL DEFAULT 0,
    last_activity INTEGER NOT NULL,
    keep_until INTEGER NOT NULL
);
CREATE INDEX webhook_retired_keep_until ON webhook_retired (keep_until);
CREATE INDEX webhook_retired_last_activity ON webhook_retired (last_activity);
"""

#: Leases for several nodes on one store (see core.cluster.lease): the node
#: posting a hook and until when (wall-clock microseconds); '' when free.
_V2 = """
ALTER TABLE webhook_queue ADD COLUMN lease_node TEXT NOT NULL DEFAULT '';
ALTER TABLE webhook_queue ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX webhook_queue_lease ON webhook_queue (lease_until) WHERE lease_node != '';
"""

MIGRATIONS: tuple[Migration, ...] = (
    Migration(owner=OWNER, version=1, sql=_V1),
    Migration(owner=OWNER, version=2, sql=_V2),
)
