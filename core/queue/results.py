"""Turning per-recipient attempt outcomes into queue state, DSNs and events.

Everything here runs inside one store transaction per batch: the result
bookkeeping, retiring, the DSN row, the suppression decision and the
outgoing event commit together, so an event is never lost or doubled.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.dispatch import HookFailed
from core.events import DeliveryOutcome, EventName
from core.queue.backoff import DELAYED_DSN_ATTEMPT, is_final
from core.queue.dsn import DSNKind, PreparedDSN, store_dsn, wants_dsn
from core.queue.events import enhanced_code, raise_outgoing_event
from core.queue.loopback import DELIVERED_UNRECORDED, DELIVERING, in_progress
from core.queue.retire import retire_entry
from core.store import queue_rows
from core.store.models import MsgResult, QueueEntry
from core.store.sql import Connection

log = logging.getLogger("moxtrio.queue")

__all__ = ["DELIVERING", "RecipientOutcome", "Applied", "apply_outcomes", "dsn_kind_for"]


@dataclass
class RecipientOutcome:
    """What happened to one entry in one attempt (before it is recorded).

    ``event`` forces the event name for a failure (``suppressed`` from the
    precheck); otherwise it follows from ``ok``/``permanent`` and the
    attempt count.
    """

    entry_id: int
    ok: bool
    permanent: bool = False
    code: int = 0
    secode: str = ""
    error: str = ""
    reply_lines: list[str] = field(default_factory=list)
    remote_host: str = ""
    dialed: dict[str, list[str]] = field(default_factory=dict)
    event: EventName | None = None
    start: datetime | None = None
    duration_ns: int = 0
    #: The host this attempt dialed (MX host, or a delivering plugin's/transport's target), "" if none.
    mx_host: str = ""
    #: Whether the SMTP session that gave this outcome ran over TLS.
    tls: bool = False

    @classmethod
    def from_hook(cls, entry_id: int, out: DeliveryOutcome) -> RecipientOutcome:
        """A plugin's verdict (precheck) as an outcome."""
        ecode = out.smtp_enhanced_code
        secode = ecode.split(".", 1)[1] if ecode.count(".") == 2 else ecode
        ok = out.event == "delivered"
        permanent = out.permanent or out.event in ("failed", "suppressed")
        return cls(
            entry_id=entry_id,
            ok=ok,
            permanent=permanent and not ok,
            code=out.smtp_code,
            secode=secode,
            error=out.error,
            remote_host=out.remote_host,
            event=out.event if out.event in ("suppressed", "failed") else None,
        )

    def as_delivery_outcome(self, event: EventName) -> DeliveryOutcome:
        return DeliveryOutcome(
            event=event,
            permanent=self.permanent,
            smtp_code=self.code,
            smtp_enhanced_code=enhanced_code(self.code, self.secode),
            error=self.error,
            remote_host=self.remote_host,
        )


def dsn_kind_for(entry: QueueEntry, out: RecipientOutcome) -> DSNKind | None:
    """Which DSN (if any) this outcome sends, given the entry after its attempt started."""
    if out.ok:
        return None
    if is_final(out.permanent, entry.attempts, entry.max_attempts):
        return "failed" if wants_dsn(entry, "failed") else None
    if entry.attempts == DELAYED_DSN_ATTEMPT and wants_dsn(entry, "delayed"):
        return "delayed"
    return None


def _complete_result(entry: QueueEntry, out: RecipientOutcome, now: datetime) -> None:
    last = entry.results[-1] if entry.results else None
    if last is None or last.error not in (DELIVERING, DELIVERED_UNRECORDED) or last.success:
        last = MsgResult(start=out.start or now)
        entry.results.append(last)
    last.duration_ns = out.duration_ns
    last.success = out.ok
    last.code = out.code
    last.secode = out.secode
    last.error = "" if out.ok else out.error
    last.mx_host = out.mx_host
    last.tls = out.tls


@dataclass
class Applied:
    """What a transaction did, for the work that follows the commit."""

    file_ids: list[str] = field(default_factory=list)
    used_dsn_files: set[str] = field(default_factory=set)
    events: list[tuple[int, str]] = field(default_factory=list)


def apply_outcomes(
    conn: Connection,
    ctx: Any,
    outcomes: list[RecipientOutcome],
    dsns: dict[int, PreparedDSN],
    now: datetime,
) -> Applied:
    """Record the outcomes (in-transaction): results, retire/keep, DSNs, suppression, events."""
    applied = Applied()
    for out in outcomes:
        try:
            entry = queue_rows.get_queue_entry(conn, out.entry_id)
        except queue_rows.QueueEntryNotFound:
            continue  # dropped or failed by the admin while being delivered
        if not out.ok and in_progress(entry) == DELIVERED_UNRECORDED:
            # Our own listener stored it (the reply got lost): it was delivered.
            out = RecipientOutcome(
                entry_id=out.entry_id, ok=True, start=out.start, duration_ns=out.duration_ns
            )
        _complete_result(entry, out, now)
        if out.dialed:
            ips = dict(entry.dialed_ips or {})
            for host, lst in out.dialed.items():
                ips[host] = list(dict.fromkeys([*ips.get(host, []), *lst]))
            entry.dialed_ips = ips
        if out.ok:
            applied.file_ids.append(retire_entry(conn, ctx.config, entry, success=True, now=now))
            raise_outgoing_event(conn, ctx, entry, "delivered")
            applied.events.append((entry.id, "delivered"))
            continue
        dsn = dsns.get(entry.id)
        if dsn is not None and store_dsn(conn, ctx, dsn, now) is not None:
            applied.used_dsn_files.add(dsn.file_id)
        if is_final(out.permanent, entry.attempts, entry.max_attempts):
            event: EventName = out.event or "failed"
            suppressing = False
            if event == "failed" and out.code != 0:
                try:
                    verdict = ctx.hooks.first_sync(
                        "moxtrio_suppress_decision",
                        conn=conn,
                        ctx=ctx,
                        entry=entry,
                        outcome=out.as_delivery_outcome(event),
                    )
                except HookFailed as exc:
                    # The failure itself must still be recorded; a broken
                    # suppression plugin only costs the Suppressing flag.
                    log.error("suppress decision for queue message %d: %s", entry.id, exc)
                    verdict = None
                suppressing = bool(verdict)
            applied.file_ids.append(retire_entry(conn, ctx.config, entry, success=False, now=now))
            code, secode = (0, "") if event == "suppressed" else (out.code, out.secode)
            raise_outgoing_event(
                conn,
                ctx,
                entry,
                event,
                smtp_code=code,
                secode=secode,
                error=out.error,
                suppressing=suppressing,
            )
            applied.events.append((entry.id, event))
        else:
            queue_rows.update_queue_entry(conn, entry)
            raise_outgoing_event(
                conn, ctx, entry, "delayed", smtp_code=out.code, secode=out.secode, error=out.error
            )
            applied.events.append((entry.id, "delayed"))
    return applied
