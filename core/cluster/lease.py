"""Lease columns (``lease_node``, ``lease_until``) on a work table, the SQL side.

A row is held by node N while ``lease_node = N`` and ``lease_until`` (wall-
clock microseconds) is in the future; ``lease_node = ''`` means free. The
node that claims a row sets both in its claim transaction, renews
``lease_until`` while it works, and clears both in the transaction that
records the outcome. A node that dies stops renewing; once ``lease_until``
passed, any node settles the row (:func:`expired`).

Claims on a shared store run under :func:`serialize_claims` (one claim
transaction of a table at a time across the cluster, so per-domain counts
read in the claim hold) and select rows with :func:`skip_locked` (rows
another transaction is changing are passed over, not waited for).
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Any

from core.store.sql import dialect

#: Tables with lease columns (the names are put into SQL text).
TABLES = ("queue", "webhook_queue", "outbox")


def _table(table: str) -> str:
    if table not in TABLES:
        raise ValueError(f"no lease columns on table {table!r}")
    return table


def skip_locked(conn: Any) -> str:
    """The locking clause for a claim's SELECT: ``FOR UPDATE SKIP LOCKED`` where
    rows can be locked (PostgreSQL); SQLite's single writer already
    serialises claims, so nothing there."""
    return " FOR UPDATE SKIP LOCKED" if dialect(conn) == "postgres" else ""


#: Key of the cluster-wide claim lock (PostgreSQL advisory lock), one for
#: every leased table: a writer's batch may hold claims of several tables,
#: and one key cannot be taken in two orders by two nodes.
CLAIM_LOCK_KEY = zlib.crc32(b"moxtrio-claims")


def serialize_claims(conn: Any, table: str) -> bool:
    """Take the cluster-wide claim lock until this transaction ends; False if
    another node holds it (claim nothing now, try again shortly).

    PostgreSQL: a transaction-level advisory lock, so two nodes' claims run
    one after the other and the in-flight counts a claim reads (per
    destination domain, per webhook URL) cannot be exceeded by a concurrent
    claim. It is only tried, never waited for: a node's writer commits many
    writes in one transaction, and waiting on the lock there while holding
    row locks of other writes could deadlock with another node. SQLite:
    nothing to take (one writer), always True.
    """
    _table(table)
    if dialect(conn) != "postgres":
        return True
    row = conn.execute("SELECT pg_try_advisory_xact_lock(?)", (CLAIM_LOCK_KEY,)).fetchone()
    return bool(row[0])


def expired(conn: Any, table: str, now_us: int, *, mine: str = "", include_mine: bool = False) -> list[int]:
    """Rows whose lease ran out, never those of node ``mine`` unless ``include_mine``.

    A running node knows what it is still working on, so its own rows are
    never taken over by itself even when a renewal came late; at start
    (``include_mine``) a stable node id's rows are all from its previous life.
    """
    t = _table(table)
    if include_mine:
        q = f"SELECT id FROM {t} WHERE lease_node != '' AND (lease_until < ? OR lease_node = ?)"
    else:
        q = f"SELECT id FROM {t} WHERE lease_node != '' AND lease_until < ? AND lease_node != ?"
    q += f" ORDER BY id{skip_locked(conn)}"
    return [int(r[0]) for r in conn.execute(q, (now_us, mine)).fetchall()]


def take(conn: Any, table: str, ids: Iterable[int], node: str, until_us: int) -> None:
    """Set the lease of claimed rows."""
    t = _table(table)
    conn.executemany(
        f"UPDATE {t} SET lease_node = ?, lease_until = ? WHERE id = ?",
        [(node, until_us, i) for i in ids],
    )


def clear(conn: Any, table: str, ids: Iterable[int]) -> None:
    """Free rows (their outcome is recorded, or they were settled)."""
    t = _table(table)
    conn.executemany(
        f"UPDATE {t} SET lease_node = '', lease_until = 0 WHERE id = ?", [(i,) for i in ids]
    )


def renew(conn: Any, table: str, node: str, until_us: int) -> int:
    """Extend every lease ``node`` holds in ``table``; returns how many rows."""
    t = _table(table)
    cur = conn.execute(
        f"UPDATE {t} SET lease_until = ? WHERE lease_node = ?", (until_us, node)
    )
    return int(cur.rowcount or 0)


def held_by(conn: Any, table: str, attempts: dict[int, int], node: str) -> set[int]:
    """Which rows ``node`` still holds for the attempt it started.

    ``attempts`` maps each row id to its attempt count after the claim: a
    row taken over and claimed again (even by this node) has a higher count
    and is not ours any more. Outcomes are recorded only for these rows.
    """
    if not attempts:
        return set()
    t = _table(table)
    ids = list(attempts)
    marks = ", ".join("?" for _ in ids)
    rows = conn.execute(
        f"SELECT id, attempts FROM {t} WHERE lease_node = ? AND id IN ({marks})", (node, *ids)
    ).fetchall()
    return {int(r[0]) for r in rows if int(r[1]) == attempts[int(r[0])]}


def in_flight(conn: Any, table: str, now_us: int) -> list[tuple[str, int]]:
    """(node, rows) holding live leases, for ``db status``."""
    t = _table(table)
    rows = conn.execute(
        f"SELECT lease_node, COUNT(*) FROM {t} WHERE lease_node != '' AND lease_until >= ?"
        " GROUP BY lease_node ORDER BY lease_node",
        (now_us,),
    ).fetchall()
    return [(str(r[0]), int(r[1])) for r in rows]


def next_expiry(conn: Any, table: str) -> int | None:
    """The earliest ``lease_until`` of a held row (when the next takeover may be due)."""
    t = _table(table)
    row = conn.execute(f"SELECT MIN(lease_until) FROM {t} WHERE lease_node != ''").fetchone()
    return None if row is None or row[0] is None else int(row[0])
