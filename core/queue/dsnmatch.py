"""Incoming mail matched to an earlier outgoing message: DSNs and fromid replies.

The core does this itself, for every account: a message delivered to
``<localpart><sep><fromid>@<domain>`` is looked up by its fromid among the
queued (mox: retired only, docs/differences.md, item 6) and retired outgoing messages. A match records a
result on that message, may add a suppression (failed DSNs, through
``moxtrio_suppress_decision``), and raises an outgoing event with
``dsn=True`` (or ``unrecognized``) instead of an incoming one.

Two steps, so the writer thread never parses mail: :func:`prepare_incoming`
reads and parses the stored message in a worker thread before the write;
:func:`apply_incoming` runs inside the write transaction per recipient.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Literal

import trio

from core.dispatch import HookFailed
from core.events import DeliveryOutcome, EventName, IncomingDelivered
from core.message.dsn import DSN, DSNParseError, dsn_smtp_codes, is_dsn_strict, parse_dsn
from core.message.headers import message_id_of
from core.message.parsed import incoming_fields, is_automated
from core.queue.events import enhanced_code, raise_outgoing_event
from core.store import queue_rows
from core.store.models import MsgResult, QueueEntry
from core.store.sql import Connection

log = logging.getLogger("moxtrio.dsnmatch")

__all__ = ["Prepared", "prepare_incoming", "apply_incoming", "fromid_of"]

_ACTION_EVENTS: dict[str, EventName] = {
    "failed": "failed",
    "delayed": "delayed",
    "delivered": "delivered",
    "relayed": "relayed",
    "expanded": "expanded",
}


@dataclass
class Prepared:
    """What the write transaction needs to know about a received message.

    ``fields`` are the incoming-webhook payload fields (None when no
    recipient's account has an IncomingWebhook); ``automated_headers`` is
    mox's Automated check without the null-sender rule (that one needs MAIL FROM);
    ``is_dsn`` is the strict webhook check; ``dsn``/``dsn_error`` the parse.
    """

    fields: dict[str, Any] | None = None
    automated_headers: bool = False
    is_dsn: bool = False
    dsn: DSN | None = None
    dsn_error: str = ""
    fromids: dict[str, str] = field(default_factory=dict)
    #: The incoming message's Message-Id (recorded on DSN-derived webhooks).
    message_id: str = ""


def fromid_of(config: Any, rcpt_to: str) -> str:
    """The fromid in a recipient address, or "".

    Split at the first occurrence of the domain's first catchall separator;
    the fromid is case-sensitive and kept as is.
    """
    localpart, at, domain = rcpt_to.rpartition("@")
    if not at:
        return ""
    seps = config.catchall_separators(domain)
    if not seps or not seps[0]:
        return ""
    _, sep, rest = localpart.partition(seps[0])
    return rest if sep else ""


def _wants_incoming_fields(config: Any) -> bool:
    """Whether any account has an IncomingWebhook (then the fields are worth parsing).

    Any account, not just the recipients' own: unknown recipients may be
    routed by fallbacks (a catch-all plugin delivers them to ``mox``).
    """
    for acc in config.dynamic.Accounts.values():
        if acc.IncomingWebhook is not None and acc.IncomingWebhook.URL:
            return True
    return False


async def prepare_incoming(
    ctx: Any, message_path: str, msg_prefix: bytes, rcpt_tos: list[str]
) -> Prepared:
    """Parse the stored message once, in a worker thread, before the write."""
    config = ctx.config
    fromids = {r: f for r in rcpt_tos if (f := fromid_of(config, r))}
    want_fields = _wants_incoming_fields(config)
    if not fromids and not want_fields:
        # Nothing to match and no incoming webhook: don't read the message.
        return Prepared()

    def work() -> Prepared:
        with open(message_path, "rb") as fh:
            data = msg_prefix + fh.read()
        p = Prepared(fromids=fromids)
        p.message_id = message_id_of(data)
        p.automated_headers = is_automated(data, "<not null>")
        if want_fields:
            try:
                p.fields = incoming_fields(data)
            except Exception as exc:  # noqa: BLE001 - an unparsable DSN: no webhook then
                log.warning("parsing incoming message for webhook: %s", exc)
        if fromids:
            p.is_dsn = is_dsn_strict(data)
            if p.is_dsn:
                try:
                    p.dsn = parse_dsn(data)
                except (DSNParseError, ValueError) as exc:
                    p.dsn_error = str(exc)
        return p

    return await trio.to_thread.run_sync(work)


def _find(
    conn: Connection, from_id: str
) -> tuple[Literal["queue", "retired"], QueueEntry] | None:
    entry = queue_rows.queue_entry_by_from_id(conn, from_id)
    if entry is not None:
        return "queue", entry
    retired = queue_rows.retired_by_from_id(conn, from_id)
    if retired is not None:
        return "retired", retired
    return None


def apply_incoming(
    conn: Connection, ctx: Any, prepared: Prepared, delivered: IncomingDelivered
) -> bool:
    """In-transaction: match one recipient's copy; True = matched, no incoming webhook.

    Also hands the prepared parse to the incoming hook (``delivered.fields``
    and ``meta["Automated"]``) for the unmatched case.
    """
    if delivered.fields is None:
        delivered.fields = prepared.fields
    delivered.meta.setdefault(
        "Automated", prepared.automated_headers or delivered.mail_from == ""
    )
    from_id = prepared.fromids.get(delivered.rcpt_to) or fromid_of(ctx.config, delivered.rcpt_to)
    if not from_id:
        return False
    # A broken match must not refuse the mail: undo its writes, deliver as
    # plain incoming.
    conn.execute("SAVEPOINT dsnmatch")
    try:
        matched = _match(conn, ctx, prepared, delivered, from_id)
    except Exception:  # noqa: BLE001 - logged; the message is still stored
        log.exception("matching incoming message for %s to an outgoing message", delivered.rcpt_to)
        conn.execute("ROLLBACK TO dsnmatch")
        matched = False
    conn.execute("RELEASE dsnmatch")
    return matched


def _match(
    conn: Connection,
    ctx: Any,
    prepared: Prepared,
    delivered: IncomingDelivered,
    from_id: str,
) -> bool:
    found = _find(conn, from_id)
    if found is None:
        return False
    table, entry = found
    clock = ctx.clock
    now = clock.now()

    result = MsgResult(start=now, error="incoming message")
    event: EventName = "unrecognized"
    is_dsn = False
    code, secode = 0, ""
    suppressing = False
    if not prepared.is_dsn:
        result.error = "incoming message not a dsn"
    else:
        is_dsn = True
        if prepared.dsn_error or prepared.dsn is None:
            result.error = f"parsing incoming dsn: {prepared.dsn_error or 'not parseable'}"
        elif len(prepared.dsn.recipients) != 1:
            result.error = f"incoming dsn has {len(prepared.dsn.recipients)} recipients, expecting 1"
        else:
            rcpt = prepared.dsn.recipients[0]
            code, secode = dsn_smtp_codes(rcpt)
            result.code, result.secode = code, secode
            mapped = _ACTION_EVENTS.get(rcpt.action)
            if mapped is not None:
                event = mapped
            if event == "failed" and code != 0:
                try:
                    verdict = ctx.hooks.first_sync(
                        "moxtrio_suppress_decision",
                        conn=conn,
                        ctx=ctx,
                        entry=entry,
                        outcome=DeliveryOutcome(
                            event="failed",
                            permanent=True,
                            smtp_code=code,
                            smtp_enhanced_code=enhanced_code(code, secode),
                            dsn=True,
                        ),
                    )
                except HookFailed as exc:
                    # A broken suppression plugin only costs the Suppressing flag.
                    log.error("suppress decision for DSN about message %d: %s", entry.id, exc)
                    verdict = None
                suppressing = bool(verdict)
            elif event in ("delivered", "relayed", "expanded"):
                result.success = True

    # Record on the original message; its Success is left alone.
    entry.results.append(result)
    entry.last_activity = now
    queue_rows.save_results(conn, table, entry)
    raise_outgoing_event(
        conn, ctx, entry, event, smtp_code=code, secode=secode, suppressing=suppressing, dsn=is_dsn,
        account=delivered.account, incoming_message_id=prepared.message_id,
    )
    log.info(
        "incoming message for %s matched %s message %d: event %s dsn=%s",
        delivered.rcpt_to,
        table,
        entry.id,
        event,
        is_dsn,
    )
    return True
