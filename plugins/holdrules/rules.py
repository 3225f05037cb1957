"""Hold rules: the record, domain normalisation, matching, and the rows.

Why AND for new messages too: mox combines a rule's conditions with OR when
a message is queued but with AND when a rule is added, which
contradicts its own documentation ("matching all specified fields"); moxtrio
uses AND in both places (docs/differences.md, item 1). A rule without
conditions matches everything ("pause the whole queue").

Domains are stored in both forms, as mox's ``dns.Domain``: ASCII (``xn--``)
for comparing with what SMTP saw, Unicode for display and for comparing with
the queue's ``*_domain_str`` columns.

Row functions are synchronous functions of a ``conn``: call them inside
``store.write``/``store.read`` or from an in-transaction hook.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.message.address import AddressError, parse_domain
from core.store.models import from_db_time, to_db_time
from core.store.sql import Connection, Row
from moxtrio import Migration

OWNER = "holdrules"
TABLE = "holdrules_rules"

MIGRATIONS: list[Migration] = [
    Migration(
        owner=OWNER,
        version=1,
        sql=f"""
-- Queue hold rules, as mox's. Empty strings mean "no condition".
-- AUTOINCREMENT: a removed rule's ID is never handed out again.
CREATE TABLE {TABLE} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account TEXT NOT NULL DEFAULT '',
    sender_domain_ascii TEXT NOT NULL DEFAULT '',
    sender_domain_unicode TEXT NOT NULL DEFAULT '',
    recipient_domain_ascii TEXT NOT NULL DEFAULT '',
    recipient_domain_unicode TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL
);
""",
        # Recorded before its comments were reworded.
        earlier_checksums=("2f8fb2d120f40aa817c37b8b7a3c65539bb0ff386ce7251512755049b9fd3bd1",),
    )
]


class HoldRuleError(ValueError):
    """Bad input for a hold rule (a user error, not a server failure)."""


class HoldRuleNotFound(LookupError):
    """No hold rule with that ID."""

    def __init__(self, rule_id: int) -> None:
        super().__init__(f"hold rule {rule_id} not found")
        self.rule_id = rule_id


@dataclass(frozen=True)
class RuleDomain:
    """A domain in both forms (mox's ``dns.Domain``); both empty = no condition."""

    ascii: str = ""
    unicode: str = ""

    @property
    def is_zero(self) -> bool:
        return not self.ascii and not self.unicode

    def name(self) -> str:
        """Unicode form if any, else ASCII (mox's ``Domain.Name()``)."""
        return self.unicode or self.ascii

    def to_json(self) -> dict[str, str]:
        """mox's JSON form of ``dns.Domain``; ``Unicode`` is empty for ASCII-only names."""
        uni = self.unicode if self.unicode != self.ascii else ""
        return {"ASCII": self.ascii, "Unicode": uni}


def parse_rule_domain(s: str) -> RuleDomain:
    """Parse a domain condition like mox's ``dns.ParseDomain``; "" means no condition.

    IDNA-validated and lower-cased; a trailing dot and IP addresses are
    refused (a hold rule names DNS domains, and a queue entry's domain is
    never compared in bracketed IP form).
    """
    if s == "":
        return RuleDomain()
    try:
        ipaddress.ip_address(s.strip("[]"))
    except ValueError:
        pass
    else:
        raise HoldRuleError(f"invalid domain {s!r}: ip address not allowed")
    try:
        d = parse_domain(s)
    except AddressError as exc:
        raise HoldRuleError(str(exc)) from exc
    return RuleDomain(ascii=d.ascii, unicode=d.unicode)


@dataclass(frozen=True)
class HoldRule:
    """One rule. ``id`` is 0 until stored."""

    id: int = 0
    account: str = ""
    sender_domain: RuleDomain = RuleDomain()
    recipient_domain: RuleDomain = RuleDomain()
    created: datetime | None = None

    @property
    def is_all(self) -> bool:
        """No conditions: the rule holds every message."""
        return not self.account and self.sender_domain.is_zero and self.recipient_domain.is_zero

    @property
    def sender_domain_str(self) -> str:
        return self.sender_domain.name()

    @property
    def recipient_domain_str(self) -> str:
        return self.recipient_domain.name()

    def to_json(self) -> dict[str, Any]:
        """The admin API's ``HoldRule`` object."""
        return {
            "ID": self.id,
            "Account": self.account,
            "SenderDomain": self.sender_domain.to_json(),
            "RecipientDomain": self.recipient_domain.to_json(),
            "SenderDomainStr": self.sender_domain_str,
            "RecipientDomainStr": self.recipient_domain_str,
        }

    @classmethod
    def from_row(cls, row: Row) -> HoldRule:
        return cls(
            id=row["id"],
            account=row["account"],
            sender_domain=RuleDomain(row["sender_domain_ascii"], row["sender_domain_unicode"]),
            recipient_domain=RuleDomain(
                row["recipient_domain_ascii"], row["recipient_domain_unicode"]
            ),
            created=from_db_time(row["created"]),
        )


def make_rule(account: str = "", sender_domain: str = "", recipient_domain: str = "") -> HoldRule:
    """A new (unsaved) rule from user input; raises HoldRuleError for bad domains.

    The account name is not validated (as mox): a rule for an account that
    does not exist simply never matches.
    """
    try:
        sd = parse_rule_domain(sender_domain)
    except HoldRuleError as exc:
        raise HoldRuleError(f"parsing sender domain: {exc}") from exc
    try:
        rd = parse_rule_domain(recipient_domain)
    except HoldRuleError as exc:
        raise HoldRuleError(f"parsing recipient domain: {exc}") from exc
    return HoldRule(account=account, sender_domain=sd, recipient_domain=rd)


# --------------------------------------------------------------------------
# matching


def _domain_matches(cond: RuleDomain, domain_ascii: str, domain_str: str) -> bool:
    if cond.is_zero:
        return True
    # The queue keeps the ASCII name and the Unicode name; either agreeing is
    # the same domain. Lower-case defensively: DNS names are case-insensitive.
    return (
        bool(cond.ascii) and cond.ascii == domain_ascii.lower()
    ) or cond.name() == domain_str.lower()


def rule_matches(rule: HoldRule, entry: Any) -> bool:
    """Whether ``rule`` holds a queue entry: every set condition must agree (AND).

    ``entry`` is a :class:`core.store.models.QueueEntry` (or anything with its
    ``sender_account``, ``sender_domain``/``sender_domain_str`` and
    ``recipient_domain``/``recipient_domain_str`` attributes).
    """
    if rule.account and rule.account != entry.sender_account:
        return False
    if not _domain_matches(rule.sender_domain, entry.sender_domain, entry.sender_domain_str):
        return False
    return _domain_matches(
        rule.recipient_domain, entry.recipient_domain, entry.recipient_domain_str
    )


def any_rule_matches(rules: list[HoldRule], entry: Any) -> bool:
    return any(rule_matches(r, entry) for r in rules)


# --------------------------------------------------------------------------
# rows


def list_rules(conn: Connection) -> list[HoldRule]:
    """All rules, oldest first (mox lists them in ID order)."""
    return [HoldRule.from_row(r) for r in conn.execute(f"SELECT * FROM {TABLE} ORDER BY id")]


def insert_rule(conn: Connection, rule: HoldRule, now: datetime) -> HoldRule:
    """Store a new rule; the ID in ``rule`` is ignored (as mox). Returns the stored rule."""
    cur = conn.execute(
        f"INSERT INTO {TABLE} (account, sender_domain_ascii, sender_domain_unicode,"
        " recipient_domain_ascii, recipient_domain_unicode, created) VALUES (?, ?, ?, ?, ?, ?)"
        " RETURNING id",
        (
            rule.account,
            rule.sender_domain.ascii,
            rule.sender_domain.unicode,
            rule.recipient_domain.ascii,
            rule.recipient_domain.unicode,
            to_db_time(now),
        ),
    )
    return HoldRule(
        id=int(cur.fetchone()[0]),
        account=rule.account,
        sender_domain=rule.sender_domain,
        recipient_domain=rule.recipient_domain,
        created=now,
    )


def delete_rule(conn: Connection, rule_id: int) -> None:
    """Remove a rule; held messages stay held."""
    cur = conn.execute(f"DELETE FROM {TABLE} WHERE id = ?", (rule_id,))
    if cur.rowcount == 0:
        raise HoldRuleNotFound(rule_id)
