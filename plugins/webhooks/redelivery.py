"""Webhook redelivery (a moxtrio extension): send a retired webhook again.

After a receiver was down longer than the 12-attempt schedule (about 32
hours), its webhooks are retired as failed. Redelivery queues each chosen
retired webhook again as a **new** webhook: a new ID, the same payload,
the account's *current* URL and Authorization (a retired webhook does not
keep the secret, and the receiver may have moved), attempts from zero.
Each attempt of the new webhook carries

    X-Mox-Webhook-Redelivery-Of: <ID of the original webhook>

so the receiver can tell a redelivery from a first delivery and drop
what it already processed. The original retired record is left as it was.

Chosen by IDs, or by account and a range of submission times, optionally
only the failed ones. Account-scoped callers (the webapi) can only reach
their own account's webhooks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.store.models import to_db_time
from core.store.sql import Connection
from moxtrio import Migration
from plugins.webhooks.records import Hook, RetiredHook, insert_hook

HEADER = "X-Mox-Webhook-Redelivery-Of"
#: At most this many webhooks are redelivered by one request.
MAX_REDELIVER = 10000

MIGRATIONS = [
    Migration(
        owner="webhooks-redelivery",
        version=1,
        sql="""
-- A redelivered webhook (hook_id, in the queue or retired) and the original it repeats.
CREATE TABLE webhook_redelivery (
    hook_id INTEGER PRIMARY KEY,
    original_id INTEGER NOT NULL
);
""",
    )
]


class RedeliveryError(ValueError):
    """The request is unusable (no selection, too many, unknown id...)."""


@dataclass
class Selection:
    """Which retired webhooks to redeliver; at least IDs or Account must be set."""

    ids: list[int] = field(default_factory=list)
    account: str = ""
    submitted_from: datetime | None = None
    submitted_to: datetime | None = None
    only_failed: bool = False


@dataclass
class Redelivered:
    original_id: int
    new_id: int = 0
    error: str = ""


def select(conn: Connection, sel: Selection) -> list[RetiredHook]:
    """The retired webhooks matching ``sel``, oldest submission first."""
    if not sel.ids and not sel.account:
        raise RedeliveryError("select webhooks by ids or by account")
    where: list[str] = []
    args: list[Any] = []
    if sel.ids:
        where.append(f"id IN ({', '.join('?' for _ in sel.ids)})")
        args += [int(i) for i in sel.ids]
    if sel.account:
        where.append("account = ?")
        args.append(sel.account)
    if sel.submitted_from is not None:
        where.append("submitted >= ?")
        args.append(to_db_time(sel.submitted_from))
    if sel.submitted_to is not None:
        where.append("submitted < ?")
        args.append(to_db_time(sel.submitted_to))
    if sel.only_failed:
        where.append("success = 0")
    rows = conn.execute(
        f"SELECT * FROM webhook_retired WHERE {' AND '.join(where)} ORDER BY submitted, id"
        f" LIMIT {MAX_REDELIVER + 1}",
        args,
    ).fetchall()
    if len(rows) > MAX_REDELIVER:
        raise RedeliveryError(f"more than {MAX_REDELIVER} webhooks match; narrow the selection")
    return [RetiredHook.from_row(r) for r in rows]


def _target(config: Any, old: RetiredHook) -> tuple[str, str] | None:
    acc = config.account(old.account)
    if acc is None:
        return None
    wh = acc.IncomingWebhook if old.is_incoming else acc.OutgoingWebhook
    if wh is None or not wh.URL:
        return None
    return wh.URL, wh.Authorization


def redeliver(
    conn: Connection, config: Any, sel: Selection, now: datetime
) -> list[Redelivered]:
    """Queue new webhooks for the selected retired ones (in the caller's transaction)."""
    done: list[Redelivered] = []
    found = select(conn, sel)
    missing = set(sel.ids) - {h.id for h in found}
    for hook_id in sorted(missing):
        done.append(Redelivered(hook_id, error="no retired webhook with this id and selection"))
    for old in found:
        target = _target(config, old)
        if target is None:
            done.append(Redelivered(old.id, error="account has no webhook URL configured"))
            continue
        url, authorization = target
        hook = Hook(
            queue_msg_id=old.queue_msg_id,
            from_id=old.from_id,
            message_id=old.message_id,
            subject=old.subject,
            extra=old.extra,
            account=old.account,
            url=url,
            authorization=authorization,
            is_incoming=old.is_incoming,
            outgoing_event=old.outgoing_event,
            payload=old.payload,
            submitted=now,
            next_attempt=now,
        )
        new_id = insert_hook(conn, hook)
        conn.execute(
            "INSERT INTO webhook_redelivery (hook_id, original_id) VALUES (?, ?)", (new_id, old.id)
        )
        done.append(Redelivered(old.id, new_id))
    # Forget references of webhooks that are gone entirely (retired cleanup).
    conn.execute(
        "DELETE FROM webhook_redelivery WHERE hook_id NOT IN (SELECT id FROM webhook_queue)"
        " AND hook_id NOT IN (SELECT id FROM webhook_retired)"
    )
    return done


def originals(conn: Connection, hook_ids: list[int]) -> dict[int, int]:
    """Original IDs of those of ``hook_ids`` that are redeliveries."""
    if not hook_ids:
        return {}
    rows = conn.execute(
        "SELECT hook_id, original_id FROM webhook_redelivery"
        f" WHERE hook_id IN ({', '.join('?' for _ in hook_ids)})",
        hook_ids,
    )
    return {int(a): int(b) for a, b in rows}


async def redeliver_now(svc: Any, sel: Selection) -> list[Redelivered]:
    """Redeliver through a running :class:`~plugins.webhooks.service.WebhookService`."""
    now = svc.clock.now()
    config = svc.ctx.config
    result: list[Redelivered] = await svc.store.write(lambda c: redeliver(c, config, sel, now))
    svc.kick()
    return result


def redeliver_exactly(
    conn: Connection, config: Any, ids: list[int], now: datetime
) -> list[int]:
    """Queue new webhooks for exactly these retired ones, all or none (the admin's button).

    Raises :class:`RedeliveryError` naming the first webhook that cannot be
    redelivered; the caller's savepoint is then rolled back, so nothing of
    the request was queued. Returns the new IDs in the order of ``ids``.
    """
    wanted = list(dict.fromkeys(int(i) for i in ids))
    if not wanted:
        raise RedeliveryError("select at least one retired webhook")
    done = {r.original_id: r for r in redeliver(conn, config, Selection(ids=wanted), now)}
    for hook_id in wanted:
        if done[hook_id].error:
            raise RedeliveryError(f"webhook {hook_id}: {done[hook_id].error}")
    return [done[i].new_id for i in wanted]
