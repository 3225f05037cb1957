"""The core's tables (owner ``core``), as migrations.

Times are INTEGER microseconds since the Unix epoch (UTC), booleans are
0/1 INTEGERs, lists and maps are JSON TEXT (see :mod:`core.store.models`).
Released versions are never edited: a schema change is a new version.
"""

from __future__ import annotations

from core.store.migrations import Migration

_V1 = """
CREATE TABLE accounts (
    name TEXT PRIMARY KEY,
    created INTEGER NOT NULL,
    -- SCRAM-SHA-256 verifier (RFC 5802/7677); NULL until a password is set.
    scram_salt BLOB,
    scram_iterations INTEGER,
    scram_stored_key BLOB,
    scram_server_key BLOB
);

CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    name TEXT NOT NULL,
    special_use TEXT NOT NULL DEFAULT '',
    UNIQUE (account, name)
);

CREATE TABLE messages (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL REFERENCES accounts(name) ON DELETE CASCADE,
    mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id),
    -- NULL once expunged; the row stays so a second delete can say
    -- "message was removed" instead of "no such message" (as mox's MessageDelete).
    file_id TEXT,
    expunged INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL,
    received INTEGER NOT NULL,
    flag_seen INTEGER NOT NULL DEFAULT 0,
    flag_answered INTEGER NOT NULL DEFAULT 0,
    flag_flagged INTEGER NOT NULL DEFAULT 0,
    flag_deleted INTEGER NOT NULL DEFAULT 0,
    flag_draft INTEGER NOT NULL DEFAULT 0,
    flag_junk INTEGER NOT NULL DEFAULT 0,
    flag_notjunk INTEGER NOT NULL DEFAULT 0,
    flag_forwarded INTEGER NOT NULL DEFAULT 0,
    flag_phishing INTEGER NOT NULL DEFAULT 0,
    flag_mdnsent INTEGER NOT NULL DEFAULT 0,
    keywords TEXT NOT NULL DEFAULT '[]',
    mail_from TEXT NOT NULL DEFAULT '',
    mail_from_localpart TEXT NOT NULL DEFAULT '',
    mail_from_domain TEXT NOT NULL DEFAULT '',
    mail_from_validated INTEGER NOT NULL DEFAULT 0,
    msg_from TEXT NOT NULL DEFAULT '',
    msg_from_validated INTEGER NOT NULL DEFAULT 0,
    rcpt_to_localpart TEXT NOT NULL DEFAULT '',
    rcpt_to_domain TEXT NOT NULL DEFAULT '',
    remote_ip TEXT NOT NULL DEFAULT '',
    message_id TEXT NOT NULL DEFAULT '',
    subject TEXT NOT NULL DEFAULT '',
    is_dsn INTEGER NOT NULL DEFAULT 0,
    dkim_domains TEXT NOT NULL DEFAULT '[]',
    msg_prefix BLOB NOT NULL DEFAULT X''
);
CREATE INDEX messages_mailbox ON messages (mailbox_id, id);
CREATE INDEX messages_account ON messages (account, id);
CREATE INDEX messages_file ON messages (file_id) WHERE file_id IS NOT NULL;
CREATE INDEX messages_message_id ON messages (account, message_id);

-- One row per recipient per submission, for the accounts' daily message and recipient limits.
CREATE TABLE outgoing (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL,
    recipient TEXT NOT NULL,
    submitted INTEGER NOT NULL
);
CREATE INDEX outgoing_account_submitted ON outgoing (account, submitted);
CREATE INDEX outgoing_account_recipient ON outgoing (account, recipient, submitted);

-- Outgoing queue, one row per recipient, as mox's queue. AUTOINCREMENT: IDs
-- are never reused, a retired record keeps its queue ID.
CREATE TABLE queue (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    base_id INTEGER NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL,
    hold INTEGER NOT NULL DEFAULT 0,
    sender_account TEXT NOT NULL,
    sender_localpart TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    sender_domain_str TEXT NOT NULL,
    from_id TEXT NOT NULL DEFAULT '',
    recipient_localpart TEXT NOT NULL,
    recipient_domain TEXT NOT NULL,
    recipient_domain_str TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 0,
    dialed_ips TEXT,
    next_attempt INTEGER NOT NULL,
    last_attempt INTEGER,
    results TEXT NOT NULL DEFAULT '[]',
    has8bit INTEGER NOT NULL DEFAULT 0,
    smtputf8 INTEGER NOT NULL DEFAULT 0,
    is_dmarc_report INTEGER NOT NULL DEFAULT 0,
    is_tls_report INTEGER NOT NULL DEFAULT 0,
    is_dsn INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    message_id TEXT NOT NULL DEFAULT '',
    msg_prefix BLOB NOT NULL DEFAULT X'',
    subject TEXT NOT NULL DEFAULT '',
    dsn_utf8 BLOB NOT NULL DEFAULT X'',
    transport TEXT NOT NULL DEFAULT '',
    require_tls INTEGER CHECK (require_tls IS NULL OR require_tls IN (0, 1)),
    future_release_request TEXT NOT NULL DEFAULT '',
    extra TEXT,
    file_id TEXT,
    last_activity INTEGER
);
CREATE INDEX queue_due ON queue (hold, next_attempt);
CREATE INDEX queue_base ON queue (base_id) WHERE base_id != 0;
CREATE INDEX queue_account ON queue (sender_account);
CREATE INDEX queue_file ON queue (file_id) WHERE file_id IS NOT NULL;
CREATE UNIQUE INDEX queue_from_id ON queue (from_id) WHERE from_id != '';

-- Retired queue entries (mox's retired list). Same columns as queue plus three;
-- id is the queue ID (no AUTOINCREMENT).
CREATE TABLE retired (
    id INTEGER PRIMARY KEY,
    base_id INTEGER NOT NULL DEFAULT 0,
    queued INTEGER NOT NULL,
    hold INTEGER NOT NULL DEFAULT 0,
    sender_account TEXT NOT NULL,
    sender_localpart TEXT NOT NULL,
    sender_domain TEXT NOT NULL,
    sender_domain_str TEXT NOT NULL,
    from_id TEXT NOT NULL DEFAULT '',
    recipient_localpart TEXT NOT NULL,
    recipient_domain TEXT NOT NULL,
    recipient_domain_str TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    max_attempts INTEGER NOT NULL DEFAULT 0,
    dialed_ips TEXT,
    next_attempt INTEGER NOT NULL,
    last_attempt INTEGER,
    results TEXT NOT NULL DEFAULT '[]',
    has8bit INTEGER NOT NULL DEFAULT 0,
    smtputf8 INTEGER NOT NULL DEFAULT 0,
    is_dmarc_report INTEGER NOT NULL DEFAULT 0,
    is_tls_report INTEGER NOT NULL DEFAULT 0,
    is_dsn INTEGER NOT NULL DEFAULT 0,
    size INTEGER NOT NULL DEFAULT 0,
    message_id TEXT NOT NULL DEFAULT '',
    msg_prefix BLOB NOT NULL DEFAULT X'',
    subject TEXT NOT NULL DEFAULT '',
    dsn_utf8 BLOB NOT NULL DEFAULT X'',
    transport TEXT NOT NULL DEFAULT '',
    require_tls INTEGER CHECK (require_tls IS NULL OR require_tls IN (0, 1)),
    future_release_request TEXT NOT NULL DEFAULT '',
    extra TEXT,
    file_id TEXT,
    last_activity INTEGER,
    recipient_address TEXT NOT NULL DEFAULT '',
    success INTEGER NOT NULL DEFAULT 0,
    keep_until INTEGER NOT NULL
);
CREATE INDEX retired_recipient_activity ON retired (recipient_address, last_activity);
CREATE INDEX retired_keep_until ON retired (keep_until);
CREATE INDEX retired_account ON retired (sender_account);
CREATE INDEX retired_file ON retired (file_id) WHERE file_id IS NOT NULL;
CREATE UNIQUE INDEX retired_from_id ON retired (from_id) WHERE from_id != '';
"""

#: Derived secrets for SCRAM-SHA-1 and CRAM-MD5 beside the accounts row's
#: SCRAM-SHA-256 verifier, and server-wide secrets (the key that makes SCRAM
#: decoy salts for unknown users stable across restarts). Its own owner, so
#: it evolves apart from the core tables.
_SECRETS_V1 = """
CREATE TABLE account_secrets (
    account TEXT PRIMARY KEY REFERENCES accounts(name) ON DELETE CASCADE,
    scram_sha1_salt BLOB NOT NULL,
    scram_sha1_iterations INTEGER NOT NULL,
    scram_sha1_stored_key BLOB NOT NULL,
    scram_sha1_server_key BLOB NOT NULL,
    crammd5_ipad BLOB NOT NULL,
    crammd5_opad BLOB NOT NULL
);

CREATE TABLE server_secrets (
    name TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
"""

#: Leases for several nodes on one store: the node delivering an entry and
#: until when its claim holds (wall-clock microseconds; see core.cluster).
#: ``lease_node`` is '' when nobody holds the entry.
_LEASES_V1 = """
ALTER TABLE queue ADD COLUMN lease_node TEXT NOT NULL DEFAULT '';
ALTER TABLE queue ADD COLUMN lease_until BIGINT NOT NULL DEFAULT 0;
CREATE INDEX queue_lease ON queue (lease_until) WHERE lease_node != '';
"""

CORE_OWNER = "core"
SECRETS_OWNER = "core-secrets"
LEASES_OWNER = "core-leases"

CORE_MIGRATIONS: tuple[Migration, ...] = (
    # Recorded before its comments were reworded (they cited documents outside the repository).
    Migration(CORE_OWNER, 1, _V1,
              earlier_checksums=("95cbfd2c5cad0944a7123c8da5ac1b76adf98268dd4b4080dd98d27a8f7437dc",)),
    Migration(SECRETS_OWNER, 1, _SECRETS_V1),
    Migration(LEASES_OWNER, 1, _LEASES_V1),
)

#: (table, column) pairs whose values are message file ids. A file not named
#: by any of these (or by a plugin's registered reference) is an orphan.
CORE_FILE_REFERENCES: tuple[tuple[str, str], ...] = (
    ("messages", "file_id"),
    ("queue", "file_id"),
    ("retired", "file_id"),
)
