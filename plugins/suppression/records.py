"""The suppression record, its table, and row functions.

Row functions are synchronous functions of a ``conn``: call them inside
``store.write``/``store.read`` or from an in-transaction hook, so an
automatic addition commits together with the retire that caused it.

The table lives in the one store database next to the core's ``queue`` and
``retired`` tables (mox keeps it in its queue database). The unique index on
(account, base_address) is what makes a duplicate add fail, as mox's
``Account+BaseAddress`` index does.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from core.message.parsed import format_json_time
from core.store.models import from_db_time, to_db_time, utcnow
from core.store.sql import Connection, Row
from moxtrio import IntegrityError, Migration

OWNER = "suppression"
TABLE = "suppression_list"

_V2 = f"""
-- moxtrio extensions: a reason category and an optional expiry (NULL = never).
ALTER TABLE {TABLE} ADD COLUMN category TEXT NOT NULL DEFAULT '';
ALTER TABLE {TABLE} ADD COLUMN until INTEGER;
UPDATE {TABLE} SET category = CASE WHEN manual THEN 'manual' ELSE 'bounce' END;
CREATE INDEX suppression_account_category ON {TABLE} (account, category, base_address);
CREATE INDEX suppression_until ON {TABLE} (until) WHERE until IS NOT NULL;
"""

MIGRATIONS: list[Migration] = [
    Migration(
        owner=OWNER,
        version=1,
        sql=f"""
-- Per-account suppression lists, as mox's. AUTOINCREMENT: a removed entry's
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
        # Recorded before its comments were reworded.
        earlier_checksums=("697f1b424a111e1fbeef66e80e470920f0f35b702d048f9bc98feac370f7bf3b",),
    ),
    Migration(
        owner=OWNER,
        version=2,
        sql=_V2,
        # PostgreSQL has no integer truth values: "WHEN manual" is spelled out.
        postgres=_V2.replace("WHEN manual THEN", "WHEN manual != 0 THEN").replace(
            "INTEGER", "BIGINT"
        ),
    ),
]

#: Reason categories (moxtrio extension) beside mox's free-text Reason.
CATEGORIES = ("bounce", "complaint", "manual", "unsubscribe")

#: mox's error text for a duplicate (observed through the webapi).
DUPLICATE_MESSAGE = 'updating indices for inserted value: not unique: "Account+BaseAddress"'
#: mox's error text for removing what is not there.
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
    """One entry; ``id`` is 0 until stored."""

    account: str
    base_address: str
    original_address: str
    created: datetime
    manual: bool = False
    reason: str = ""
    id: int = 0
    #: moxtrio extensions: one of CATEGORIES ("" = derived from ``manual``),
    #: and when the entry lapses (None = never).
    category: str = ""
    until: datetime | None = None

    @property
    def kind(self) -> str:
        """The category, derived from ``manual`` for entries that have none."""
        return self.category or ("manual" if self.manual else "bounce")

    def to_json(self) -> dict[str, Any]:
        """The webapi's ``Suppression`` object, field order as mox."""
        return {
            "ID": self.id,
            "Created": format_json_time(self.created),
            "Account": self.account,
            "BaseAddress": self.base_address,
            "OriginalAddress": self.original_address,
            "Manual": self.manual,
            "Reason": self.reason,
        }

    def to_export(self) -> dict[str, Any]:
        """The export/import form: mox's fields plus Category and Until."""
        d = self.to_json()
        d["Category"] = self.kind
        d["Until"] = None if self.until is None else format_json_time(self.until)
        return d

    @classmethod
    def from_row(cls, row: Row | tuple[Any, ...]) -> Suppression:
        id_, created, account, base, original, manual, reason, category, until = row
        return cls(
            id=int(id_),
            created=from_db_time(created),
            account=account,
            base_address=base,
            original_address=original,
            manual=bool(manual),
            reason=reason,
            category=category,
            until=None if until is None else from_db_time(until),
        )


_COLS = "id, created, account, base_address, original_address, manual, reason, category, until"


def _live(now: datetime | None) -> tuple[str, int]:
    """The condition (and its argument) for entries that have not lapsed at ``now``."""
    return "(until IS NULL OR until > ?)", to_db_time(now or utcnow())


def list_suppressions(
    conn: Connection, account: str = "", now: datetime | None = None
) -> list[Suppression]:
    """Entries of ``account`` ordered by base address (bytewise, as mox's index
    yields them); all accounts ordered by ID when ``account`` is "". Lapsed
    entries are left out."""
    live, t = _live(now)
    if account:
        rows = conn.execute(
            f"SELECT {_COLS} FROM {TABLE} WHERE account = ? AND {live}"
            " ORDER BY base_address, id",
            (account, t),
        )
    else:
        rows = conn.execute(f"SELECT {_COLS} FROM {TABLE} WHERE {live} ORDER BY id", (t,))
    return [Suppression.from_row(r) for r in rows]


def find_suppression(
    conn: Connection, account: str, base: str, now: datetime | None = None
) -> Suppression | None:
    """The live entry for ``base`` in ``account``'s list; ``account`` "" matches any
    account (the oldest entry wins when several have it)."""
    live, t = _live(now)
    if account:
        row = conn.execute(
            f"SELECT {_COLS} FROM {TABLE} WHERE account = ? AND base_address = ? AND {live}",
            (account, base, t),
        ).fetchone()
    else:
        row = conn.execute(
            f"SELECT {_COLS} FROM {TABLE} WHERE base_address = ? AND {live} ORDER BY id LIMIT 1",
            (base, t),
        ).fetchone()
    return None if row is None else Suppression.from_row(row)


def is_suppressed(
    conn: Connection, account: str, base: str, now: datetime | None = None
) -> bool:
    """Whether ``account``'s list has a live ``base`` (the delivery-time check, indexed)."""
    live, t = _live(now)
    row = conn.execute(
        f"SELECT 1 FROM {TABLE} WHERE account = ? AND base_address = ? AND {live}",
        (account, base, t),
    ).fetchone()
    return row is not None


def insert_suppression(conn: Connection, sup: Suppression) -> Suppression:
    """Store a new entry (its ``id`` is ignored); raises DuplicateSuppression.

    A lapsed entry for the same base address is replaced.
    """
    conn.execute(
        f"DELETE FROM {TABLE} WHERE account = ? AND base_address = ? AND until IS NOT NULL"
        " AND until <= ?",
        (sup.account, sup.base_address, to_db_time(utcnow())),
    )
    try:
        cur = conn.execute(
            f"INSERT INTO {TABLE} (created, account, base_address, original_address, manual,"
            " reason, category, until) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
            _values(sup),
        )
    except IntegrityError as exc:
        if "UNIQUE" in str(exc).upper():
            raise DuplicateSuppression() from exc
        raise
    return replace(sup, id=int(cur.fetchone()[0]))


def _values(sup: Suppression) -> tuple[Any, ...]:
    return (
        to_db_time(sup.created),
        sup.account,
        sup.base_address,
        sup.original_address,
        int(sup.manual),
        sup.reason,
        sup.kind,
        None if sup.until is None else to_db_time(sup.until),
    )


def upsert_suppressions(conn: Connection, entries: list[Suppression]) -> int:
    """Insert or update many entries in the caller's transaction (bulk import).

    An existing entry (same account and base address) keeps its ID and
    Created; its original address, Manual, Reason, Category and Until are
    replaced. Returns the number of entries written.
    """
    conn.executemany(
        f"INSERT INTO {TABLE} (created, account, base_address, original_address, manual,"
        " reason, category, until) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (account, base_address) DO UPDATE SET"
        " original_address = excluded.original_address, manual = excluded.manual,"
        " reason = excluded.reason, category = excluded.category, until = excluded.until",
        (_values(e) for e in entries),
    )
    return len(entries)


@dataclass(frozen=True)
class PageFilter:
    """Listing filters (moxtrio extension): all optional."""

    account: str = ""
    category: str = ""
    contains: str = ""
    include_lapsed: bool = False


def list_page(
    conn: Connection, f: PageFilter, after: str = "", limit: int = 1000,
    now: datetime | None = None,
) -> list[Suppression]:
    """One page ordered by (account, base address), starting after ``after``
    (:func:`page_cursor` of the last entry of the previous page): keyset
    pagination, so page 100 of a 10^5-entry list costs what page 1 costs.
    Raises BadCursor."""
    where: list[str] = []
    args: list[Any] = []
    if f.account:
        where.append("account = ?")
        args.append(f.account)
    if f.category:
        if f.category in ("manual", "bounce"):
            # Entries from before categories existed have none; derived from Manual.
            where.append("(category = ? OR (category = '' AND manual = ?))")
            args += [f.category, int(f.category == "manual")]
        else:
            where.append("category = ?")
            args.append(f.category)
    if f.contains:
        where.append("instr(base_address, ?) > 0")
        args.append(f.contains.lower())
    if not f.include_lapsed:
        live, t = _live(now)
        where.append(live)
        args.append(t)
    if after:
        acc, base = decode_cursor(after)
        where.append("(account, base_address) > (?, ?)")
        args += [acc, base]
    sql = f"SELECT {_COLS} FROM {TABLE}"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY account, base_address LIMIT {max(1, int(limit))}"
    return [Suppression.from_row(r) for r in conn.execute(sql, args)]


def page_cursor(sup: Suppression) -> str:
    """The opaque ``after`` value continuing after ``sup`` (base64url)."""
    raw = f"{sup.account}\0{sup.base_address}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


class BadCursor(ValueError):
    pass


def decode_cursor(after: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(after + "=" * (-len(after) % 4)).decode()
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadCursor(f"bad page cursor {after!r}") from exc
    acc, sep, base = raw.partition("\0")
    if not sep:
        raise BadCursor(f"bad page cursor {after!r}")
    return acc, base


def delete_lapsed(conn: Connection, now: datetime) -> int:
    """Remove entries whose Until passed; returns how many."""
    cur = conn.execute(
        f"DELETE FROM {TABLE} WHERE until IS NOT NULL AND until <= ?", (to_db_time(now),)
    )
    return cur.rowcount


def delete_suppression(conn: Connection, account: str, base: str) -> None:
    """Remove ``account``'s entry for ``base``; raises SuppressionAbsent."""
    cur = conn.execute(
        f"DELETE FROM {TABLE} WHERE account = ? AND base_address = ?", (account, base)
    )
    if cur.rowcount == 0:
        raise SuppressionAbsent()
