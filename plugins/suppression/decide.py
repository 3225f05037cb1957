"""When a recipient goes on the list, and what happens at delivery time.

Both run inside the core's transaction (in-transaction hooks): the check at
delivery time sees every committed addition, and an addition commits
together with the retire and the outgoing event that report it, so a
``Suppressing: true`` webhook is never sent for an entry that was not stored,
nor an entry stored without its webhook.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from core.goflags import go_quote
from core.store.models import RetiredEntry, utcnow
from core.store.queue_rows import recent_outcomes
from core.store.sql import Connection
from moxtrio import DeliveryOutcome, PluginContext
from plugins.suppression.base import EntryLike, RecipientAddress, recipient_of_entry
from plugins.suppression.expiry import automatic_until
from plugins.suppression.records import (
    Suppression,
    find_suppression,
    insert_suppression,
    is_suppressed,
)

Source = Literal["queue", "DSN"]

#: SMTP codes that suppress on the first failure, whatever the enhanced code:
#: 521 host accepts no mail, 550 mailbox unavailable, 551 user not local,
#: 553 mailbox name not allowed, 556 domain accepts no mail.
IMMEDIATE_CODES = frozenset({521, 550, 551, 553, 556})

#: Enhanced codes (without class) that suppress at once with any 5xx code:
#: unknown mailbox, unknown system/domain, bad mailbox syntax, mailbox moved,
#: mailbox disabled, delivery not authorized (often: we are blocklisted).
IMMEDIATE_SECODES = frozenset({"1.1", "1.2", "1.3", "1.6", "2.1", "7.1"})

#: How many earlier failed retired messages make the current failure the third.
PREVIOUS_FAILURES = 2


def is_immediate_block(code: int, secode: str) -> bool:
    """Whether a failure with SMTP ``code`` and enhanced ``secode`` (``x.y``) suppresses at once."""
    if code in IMMEDIATE_CODES:
        return True
    return code // 100 == 5 and secode in IMMEDIATE_SECODES


def short_secode(enhanced: str) -> str:
    """``5.1.1`` -> ``1.1``; a code already without class is returned as is."""
    return enhanced.split(".", 1)[1] if enhanced.count(".") == 2 else enhanced


def previous_failures(conn: Connection, recipient: str, exclude_id: int) -> bool:
    """The three-consecutive-failures rule: are the two most recent *other*
    retired messages to exactly ``recipient`` both failures?

    Like mox, any sender account's history counts: the rule is about the
    recipient address failing, the full address, not the base.
    """
    outcomes = recent_outcomes(conn, recipient, exclude_id, PREVIOUS_FAILURES)
    return len(outcomes) == PREVIOUS_FAILURES and not any(outcomes)


def failure_reason(
    conn: Connection,
    *,
    source: Source,
    code: int,
    secode: str,
    recipient: str,
    msg_id: int,
) -> str | None:
    """The Reason for a new automatic entry, or None when this failure adds none."""
    if code == 0:
        return None  # timeouts, connection and DNS errors never suppress
    if is_immediate_block(code, secode):
        return (
            f"delivery failure from {source} with smtp code {code},"
            f" enhanced code {go_quote(secode)}"
        )
    if previous_failures(conn, recipient, msg_id):
        return f"delivery failure from {source} and three consecutive failures"
    return None


def suppress_after_failure(
    conn: Connection,
    *,
    account: str,
    rcpt: RecipientAddress,
    retired_address: str,
    msg_id: int,
    code: int,
    secode: str,
    source: Source,
    now: datetime | None = None,
    ctx: PluginContext | None = None,
) -> Suppression | None:
    """mox's rules for adding a recipient after one failed delivery; returns the new entry, if any.

    ``retired_address`` is the recipient as the core writes it into
    ``retired.recipient_address`` (the consecutive rule compares exact
    addresses). Already listed: nothing new (the event keeps
    ``Suppressing: false``).
    """
    base = rcpt.base
    if find_suppression(conn, account, base) is not None:
        return None
    reason = failure_reason(
        conn, source=source, code=code, secode=secode, recipient=retired_address, msg_id=msg_id
    )
    if reason is None:
        return None
    now = now or utcnow()
    return insert_suppression(
        conn,
        Suppression(
            account=account,
            base_address=base,
            original_address=rcpt.original,
            created=now,
            manual=False,
            reason=reason,
            category="bounce",
            until=automatic_until(ctx, account, now),
        ),
    )


def source_of(entry: Any, outcome: DeliveryOutcome) -> Source:
    """``DSN`` for a failure reported by an incoming DSN, else ``queue``.

    The core marks DSN-derived outcomes with ``dsn``/``source`` when it has
    them; a retired entry can only have failed through a DSN (the queue
    decides before it retires).
    """
    if getattr(outcome, "source", "") == "DSN" or getattr(outcome, "dsn", False):
        return "DSN"
    return "DSN" if isinstance(entry, RetiredEntry) else "queue"


def decide(
    conn: Connection, entry: Any, outcome: DeliveryOutcome, ctx: PluginContext | None = None
) -> bool:
    """The ``moxtrio_suppress_decision`` verdict: True when this failure added an entry."""
    if outcome.smtp_code == 0:
        return False
    sup = suppress_after_failure(
        conn,
        account=entry.sender_account,
        rcpt=recipient_of_entry(entry),
        retired_address=entry.recipient,
        msg_id=entry.id,
        code=outcome.smtp_code,
        secode=short_secode(outcome.smtp_enhanced_code),
        source=source_of(entry, outcome),
        ctx=ctx,
    )
    return sup is not None


def suppressed_error(rcpt: RecipientAddress) -> str:
    """The attempt's error text for a listed recipient (observed)."""
    return (
        f"not delivering to recipient address {rcpt.original}:"
        " address is on suppression list, permanent"
    )


def precheck(conn: Connection, entry: EntryLike, account: str) -> DeliveryOutcome | None:
    """The ``moxtrio_delivery_precheck`` verdict for one recipient of a batch.

    Listed: a permanent ``suppressed`` failure without SMTP (code 0); the core
    records the result, sends the failure DSN and raises the event.
    """
    rcpt = recipient_of_entry(entry)
    if not is_suppressed(conn, account, rcpt.base):
        return None
    return DeliveryOutcome(event="suppressed", permanent=True, error=suppressed_error(rcpt))
