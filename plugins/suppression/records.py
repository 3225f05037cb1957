"""The suppression record, its table, and row functions (spec 05 §1).

Row functions are synchronous functions of a ``conn``: call them inside
``store.write``/``store.read`` or from an in-transaction hook, so an
automatic addition commits together with the retire that caused it.

The table lives in the one store database next to the core's ``queue`` and
``retired`` tables (mox keeps it in its queue database). The unique index on
(account, base_address) is what makes a duplicate add fail, as mox's
``Account+BaseAddress`` index does.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.message.parsed import format_json_time
from core.store.migrations import Migration
from core.store.models import from_db_time, to_db_time

OWNER = "suppression"
TABLE = "suppression_list"

MIGRATIONS: list[Migration] = [
    Migration(
        owner=OWNER,
        version=1,
        sql=f"""
-- Per-account suppression lists (spec 05). AUTOINCREMENT: a removed entry's
-- ID is never handed out again (IDs are visible in the webapi).
CREATE TABLE {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created INTEGER NOT NULL,
    account TEXT NOT NULL CHECK (account != ''),
    base_address TEXT NOT NULL CHECK (base_address != ''),
    original_address TEXT NOT NULL CHECK (original_address != ''),
    manual INTEGER NOT NULL DEFAULT 0,
    reason TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX suppression_account_base ON {TABLE} (account, base_address);
""",
    )
]

#: mox's error text for a duplicate (observed through the webapi, spec 01 §5.3).
DUPLICATE_MESSAGE = 'updating indices for inserted value: not unique: "Account+BaseAddress"'
#: mox's error text for removing what is not there (spec 01 §5.4).
ABSENT_MESSAGE = "absent"


class DuplicateSuppression(ValueError):
    """The account's list already has this base address."""

    def __init__(self) -> None:
        super().__init__(DUPLICATE_MESSAGE)


class SuppressionAbsent(LookupError):
    """No entry with this base address for the account."""

    def __init__(self) -> None:
        super().__init__(ABSENT_MESSAGE)


@dataclass(frozen=True)
class Suppression:
    """One entry (spec 05 §1); ``id`` is 0 until stored."""

    account: str
    base_address: str
    original_address: str
    created: datetime
    manual: bool = False
    reason: str = ""
    id: int = 0

    def to_json(self) -> dict[str, Any]:
        """The webapi's ``Suppression`` object (spec 01 §3), field order as mox."""
        return {
            "ID": self.id,
            "Created": format_json_time(self.created),
            "Account": self.account,
            "BaseAddress": self.base_address,
            "OriginalAddress": self.original_address,
            "Manual": self.manual,
            "Reason": self.reason,
        }

    @classmethod
    def from_row(cls, row: sqlite3.Row | tuple[Any, ...]) -> Suppression:
        id_, created, account, base, original, manual, reason = row
        return cls(
            id=int(id_),
            created=from_db_time(created),
            account=account,
            base_address=base,
            original_address=original,
            manual=bool(manual),
            reason=reason,
        )


_COLS = "id, created, account, base_address, original_address, manual, reason"


def list_suppressions(conn: sqlite3.Connection, account: str = "") -> list[Suppression]:
    """Entries of ``account`` ordered by base address (bytewise, as mox's index
    yields them); all accounts ordered by ID when ``account`` is ""."""
    if account:
        rows = conn.execute(
            f"SELECT {_COLS} FROM {TABLE} WHERE account = ? ORDER BY base_address, id", (account,)
        )
    else:
        rows = conn.execute(f"SELECT {_COLS} FROM {TABLE} ORDER BY id")
    return [Suppression.from_row(r) for r in rows]


def find_suppression(conn: sqlite3.Connection, account: str, base: str) -> Suppression | None:
    """The entry for ``base`` in ``account``'s list; ``account`` "" matches any
    account (the oldest entry wins when several have it)."""
    if account:
        row = conn.execute(
            f"SELECT {_COLS} FROM {TABLE} WHERE account = ? AND base_address = ?", (account, base)
        ).fetchone()
    else:
        row = conn.execute(
            f"SELECT {_COLS} FROM {TABLE} WHERE base_address = ? ORDER BY id LIMIT 1", (base,)
        ).fetchone()
    return None if row is None else Suppression.from_row(row)


def is_suppressed(conn: sqlite3.Connection, account: str, base: str) -> bool:
    """Whether ``account``'s list has ``base`` (the delivery-time check, indexed)."""
    row = conn.execute(
        f"SELECT 1 FROM {TABLE} WHERE account = ? AND base_address = ?", (account, base)
    ).fetchone()
    return row is not None


def insert_suppression(conn: sqlite3.Connection, sup: Suppression) -> Suppression:
    """Store a new entry (its ``id`` is ignored); raises DuplicateSuppression."""
    try:
        cur = conn.execute(
            f"INSERT INTO {TABLE} (created, account, base_address, original_address, manual,"
            " reason) VALUES (?, ?, ?, ?, ?, ?)",
            (
                to_db_time(sup.created),
                sup.account,
                sup.base_address,
                sup.original_address,
                int(sup.manual),
                sup.reason,
            ),
        )
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" in str(exc).upper():
            raise DuplicateSuppression() from exc
        raise
    assert cur.lastrowid is not None
    return Suppression(
        id=cur.lastrowid,
        created=sup.created,
        account=sup.account,
        base_address=sup.base_address,
        original_address=sup.original_address,
        manual=sup.manual,
        reason=sup.reason,
    )


def delete_suppression(conn: sqlite3.Connection, account: str, base: str) -> None:
    """Remove ``account``'s entry for ``base``; raises SuppressionAbsent."""
    cur = conn.execute(
        f"DELETE FROM {TABLE} WHERE account = ? AND base_address = ?", (account, base)
    )
    if cur.rowcount == 0:
        raise SuppressionAbsent()
