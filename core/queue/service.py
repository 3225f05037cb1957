"""QueueService: the outgoing queue as the rest of the server sees it.

Wiring (core/runtime.py)::

    queue = QueueService(ctx)              # plain constructor, no I/O
    ctx.queue = queue
    await nursery.start(queue.run)         # scheduler + retired cleanup
    commands += queue.ctl_commands()

``add`` is the one queue-add path for SMTP submission and webapi Send; the
admin operations (``hold``, ``unhold``, ``schedule``, ``transport``,
``requiretls``, ``fail``, ``drop``) take a :class:`QueueFilter` and return
the number of messages affected, for the ctl commands, the admin API and
plugins such as holdrules.
"""

from __future__ import annotations

import builtins
import copy
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import trio

from core.cluster import lease as leases
from core.cluster.node import now_us
from core.plugin_api import CtlCommand, PluginContext
from core.queue.add import AddRequest, build_entries, insert_entries
from core.queue.admin import (
    QueueFilter,
    QueueSort,
    RetiredFilter,
    RetiredSort,
    select_queue,
    select_retired,
    update_matching,
)
from core.queue.claim import ClaimLimits, Round, claim_round, reap_expired
from core.queue.clock import Clock, SystemClock
from core.queue.deliver import DeliverySettings, deliver_with_timing
from core.queue.dsn import PreparedDSN, prepare_dsn, store_dsn, wants_dsn
from core.queue.events import raise_outgoing_event
from core.queue.loopback import LoopbackDeliveries
from core.queue.prepare import Claimed
from core.queue.recover import interrupted_ids, settle_interrupted
from core.queue.results import Applied, RecipientOutcome, apply_outcomes, dsn_kind_for
from core.queue.retire import cleanup_retired, retire_entry
from core.queue.scheduler import QueueSettings, Scheduler
from core.store import WriteAborted, queue_rows
from core.store.models import MsgResult, QueueEntry, RetiredEntry
from core.store.sql import Connection, DatabaseError

log = logging.getLogger("moxtrio.queue")

ADMIN_CANCELED = "delivery canceled by admin"
CLEANUP_FIRST = 3.0
CLEANUP_INTERVAL = 3600.0
FINISH_TIMEOUT = 30.0
#: Waits between attempts to record an outcome the store refused (disk full).
RECORD_RETRY_FIRST = 0.5
RECORD_RETRY_MAX = 30.0
#: Failures of recording delivery outcomes that are retried.
_RETRYABLE: tuple[type[Exception], ...] = (*DatabaseError, OSError, WriteAborted)
#: Pause after a delivery task failed outright (e.g. its claim could not be written).
FAILED_CLAIM_PAUSE = 1.0
#: Time in-flight deliveries get to finish when the server stops.
STOP_GRACE = 5.0

__all__ = ["QueueService", "QueueSettings", "DeliverySettings", "ADMIN_CANCELED"]


class QueueService:
    """The queue: add, scheduler, delivery, retired history, admin operations."""

    def __init__(
        self,
        ctx: PluginContext,
        *,
        clock: Clock | None = None,
        settings: QueueSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.clock: Clock = clock or SystemClock()
        self._settings_given = settings is not None
        self.settings = settings or QueueSettings()
        self.rng = rng or random.Random()
        self.node = ctx.cluster
        self.scheduler = Scheduler(ctx.store, self.clock, self.settings, self.node.node_id)
        subscribe = getattr(self.clock, "subscribe", None)
        if subscribe is not None:
            subscribe(self.kick)
        self.delivered_batches = 0
        #: The queue's connections to our own listener (when a plugin delivers there).
        self.loopback = LoopbackDeliveries()
        self._scheduler_scope: trio.CancelScope | None = None
        self._deliveries: trio.Nursery | None = None
        self._stopped = trio.Event()

    # -- lifecycle -------------------------------------------------------------

    def kick(self) -> None:
        """Wake the scheduler (new entries, admin changes, clock moved)."""
        self.scheduler.kick()

    def _load_settings(self) -> None:
        """Optional ``<config dir>/plugins/queue.yaml``: MaxDeliveries, MaxDeliveriesPerDomain, SMTPPort."""
        if self._settings_given:
            return
        try:
            data = self.ctx.plugin_settings("queue")
        except Exception as exc:  # noqa: BLE001 - bad file: say so, use defaults
            log.error("queue settings: %s", exc)
            return
        s = self.settings
        s.max_deliveries = int(data.get("MaxDeliveries", s.max_deliveries))
        s.max_per_domain = int(data.get("MaxDeliveriesPerDomain", s.max_per_domain))
        s.delivery.smtp_port = int(data.get("SMTPPort", s.delivery.smtp_port))

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Scheduler and retired-history cleanup; ``started()`` once running.

        Attempts left unsettled by a crash are settled before the scheduler
        starts. Runs until :meth:`stop` (or cancellation).
        """
        await trio.to_thread.run_sync(self._load_settings)
        self.node.wakeups.subscribe("queue", self.kick)
        await self._settle_interrupted(None, "start-up")
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._cleanup_loop)
                nursery.start_soon(self._renew_loop)
                async with trio.open_nursery() as deliveries:
                    self._deliveries = deliveries
                    with trio.CancelScope() as scope:
                        self._scheduler_scope = scope
                        task_status.started()
                        await self.scheduler.run(deliveries, self._claim, self._deliver_claimed)
                nursery.cancel_scope.cancel()
        finally:
            self._stopped.set()

    async def stop(self, grace: float = STOP_GRACE) -> None:
        """Start no more deliveries; give those in flight ``grace`` seconds, then end them.

        A delivery ended this way is settled as after a crash (see
        :mod:`core.queue.recover`), so no entry stays "delivering...". Call
        before the listeners stop: the queue may deliver to them.
        """
        if self._scheduler_scope is None:
            return
        self._scheduler_scope.cancel()
        if self._deliveries is not None:
            self._deliveries.cancel_scope.deadline = trio.current_time() + grace
        await self._stopped.wait()

    async def _settle_interrupted(self, ids: builtins.list[int] | None, why: str) -> None:
        """Settle attempts without a recorded outcome and free their leases.

        ``ids``: this node's own attempts (shutdown). None (start-up): on a
        store of its own (SQLite) every interrupted attempt; on a shared store
        only those whose lease expired or that this node id held, never what
        another live node is delivering.
        """
        now = self.clock.now()
        # An attempt to our own listener may already be stored (its mark says so).
        loopback = self.loopback.active
        node = self.node

        def tx(conn: Connection) -> tuple[builtins.list[str], int, int]:
            if ids is None and node.shared:
                applied, n = reap_expired(
                    conn, self.ctx, now, now_us(), loopback=loopback, node=node.node_id,
                    include_mine=True,
                )
                return applied.file_ids, len(applied.events), n - len(applied.events)
            todo = interrupted_ids(conn) if ids is None else ids
            applied, reset = settle_interrupted(conn, self.ctx, todo, now, loopback=loopback)
            if ids is None:
                conn.execute("UPDATE queue SET lease_node = '', lease_until = 0 WHERE lease_node != ''")
            else:
                leases.clear(conn, "queue", todo)
            return applied.file_ids, len(applied.events), reset

        files, delivered, reset = await self.store.write(tx)
        await self.store.remove_unreferenced(files)
        if delivered or reset:
            log.info(
                "interrupted deliveries settled at %s: %d recorded as delivered, %d to retry",
                why,
                delivered,
                reset,
            )

    async def _renew_loop(self) -> None:
        """Keep this node's leases alive while it delivers (a delivery can take minutes)."""
        node = self.node
        while True:
            await trio.sleep(node.renew_every)
            if not self.scheduler.inflight:
                continue
            until = node.lease_until()

            def renew(c: Connection, until: int = until) -> int:
                return leases.renew(c, "queue", node.node_id, until)

            try:
                await self.store.write(renew)
            except Exception:  # noqa: BLE001 - try again at the next interval
                log.exception("renewing queue leases")

    async def _cleanup_loop(self) -> None:
        await trio.sleep(CLEANUP_FIRST)
        while True:
            try:
                await self.cleanup_retired()
            except Exception:  # noqa: BLE001 - try again next hour
                log.exception("cleaning up retired messages")
            await trio.sleep(CLEANUP_INTERVAL)

    async def cleanup_retired(self) -> int:
        """Delete retired records whose KeepUntil passed; returns how many."""
        now = self.clock.now()
        return await self.store.write(lambda c: cleanup_retired(c, now))

    # -- adding ----------------------------------------------------------------

    async def add(self, req: AddRequest) -> list[QueueEntry]:
        """Queue a message for its recipients in one transaction; return after commit.

        Raises FromIDNotUnique (a fromid in use), QueueAddError (bad request),
        HookFailed (a queue-adding plugin failed: temporary error).
        """
        now = self.clock.now()
        try:
            file_size = req.file_size
            if file_size is None and req.size is not None:
                file_size = req.size - len(req.msg_prefix)
            if file_size is None:
                file_size = await self.store.files.size(req.file_id)
            sep = ""
            if req.mail_from is not None and not req.fromid_separator:
                seps = self.ctx.config.catchall_separators(req.mail_from.domain)
                sep = seps[0] if seps else ""
            entries = build_entries(req, now, file_size, sep)

            def tx(c: Connection) -> builtins.list[QueueEntry]:
                added = insert_entries(
                    c, self.ctx.hooks, entries, record=req.record_outgoing, now=now,
                    after=req.in_transaction,
                )
                # Every other node's scheduler wakes once this commits: a Send
                # on one node is delivered by whichever node has a free slot.
                # Entries not due yet (FutureRelease, held) wake nobody: this
                # node's own scheduler wakes for them (kick_for below).
                if any(not e.hold and e.next_attempt <= now for e in added):
                    self.node.wakeups.notify(c, "queue", local=False)
                return added

            entries = await self.store.write(tx)
        except BaseException:
            if not req.keep_file_on_failure:
                with trio.CancelScope(shield=True):
                    await self.store.remove_unreferenced([req.file_id])
            raise
        self.scheduler.kick_for(e.next_attempt for e in entries if not e.hold)
        return entries

    # -- delivery ----------------------------------------------------------------

    async def _claim(self, free: int) -> Round:
        """One claim round in one write transaction (see :mod:`core.queue.claim`)."""
        now = self.clock.now()
        s = self.settings
        limits = ClaimLimits(free=free, max_per_domain=s.max_per_domain, due_batch=s.due_batch)
        loopback = self.loopback.active
        try:
            rnd = await self.store.write(
                lambda c: claim_round(c, self.ctx, self.node, now, limits, self.rng, loopback=loopback)
            )
        except _RETRYABLE as exc:
            # Nothing was claimed; a store that refuses writes (disk full)
            # is asked again shortly, not in a busy loop.
            log.error("claiming due queue entries: %s", exc)
            await trio.sleep(FAILED_CLAIM_PAUSE)
            return Round(blocked=True)
        if rnd.reaped_count:
            log.warning(
                "took over %d queue entries whose delivery lease expired (their node stopped);"
                " outcome unknown, retrying", rnd.reaped_count,
            )
            await self.store.remove_unreferenced(rnd.reaped.file_ids)
        return rnd

    async def _deliver_claimed(self, claimed: Claimed, domain: str) -> None:
        claimed_ids = list(claimed.started)
        try:
            first = next(iter(claimed.started.values()), None)
            now = (first.last_attempt if first else None) or self.clock.now()
            outcomes = list(claimed.settled)
            if claimed.batch:
                outcomes += await deliver_with_timing(
                    self.ctx, self.settings.delivery, claimed.batch, claimed.transport
                )
                self.delivered_batches += 1
            for o in outcomes:
                o.start = o.start or now
            await self._finish(claimed.started, outcomes)
        except Exception:  # noqa: BLE001 - one bad batch must not stop the queue
            log.exception("queue delivery of %s failed", claimed_ids)
            # The entries keep their lease until the outcome is recorded; a
            # pause keeps a store that refuses writes (disk full) from a busy
            # loop. Settled now, as after an interrupted attempt.
            await trio.sleep(FAILED_CLAIM_PAUSE)
            with trio.CancelScope(shield=True):
                try:
                    await self._settle_interrupted(claimed_ids, "delivery error")
                except Exception:  # noqa: BLE001 - the lease expires and another round settles it
                    log.exception("settling failed delivery of %s", claimed_ids)
        except BaseException:
            # Shutdown ended the attempt (trio.Cancelled, possibly inside an
            # exception group from a nursery in the delivery): settle it now
            # rather than leaving "delivering..." for the next start.
            with trio.CancelScope(shield=True) as cs:
                cs.deadline = trio.current_time() + FINISH_TIMEOUT
                try:
                    await self._settle_interrupted(claimed_ids, "shutdown")
                except Exception:  # noqa: BLE001 - settled again at next start
                    log.exception("settling interrupted delivery of %s", claimed_ids)
            raise
        finally:
            self.scheduler.release(claimed_ids, group_done=True)

    async def _prepare_dsns(
        self, started: dict[int, QueueEntry], outcomes: list[RecipientOutcome], now: datetime
    ) -> dict[int, PreparedDSN]:
        dsns: dict[int, PreparedDSN] = {}
        for o in outcomes:
            e = started.get(o.entry_id)
            if e is None:
                continue
            kind = dsn_kind_for(e, o)
            if kind is None:
                continue
            try:
                dsns[e.id] = await prepare_dsn(
                    self.ctx,
                    e,
                    kind,
                    error=o.error,
                    smtp_code=o.code,
                    secode=o.secode,
                    reply_lines=o.reply_lines,
                    remote_host=o.remote_host,
                    now=now,
                )
            except Exception:  # noqa: BLE001 - the failure is still recorded
                log.exception("composing %s DSN for queue message %d", kind, e.id)
        return dsns

    async def _finish(
        self, started: dict[int, QueueEntry], outcomes: list[RecipientOutcome]
    ) -> None:
        """Record outcomes, DSNs and events in one transaction; remove files after.

        A store that refuses the write (disk full) is tried again, with
        growing waits, for as long as the server runs: the entries stay in
        flight meanwhile, so an attempt that happened is never repeated
        because its outcome could not be written. Shielded from cancellation
        for one write at a time; a shutdown while retrying leaves the entry
        to be settled at the next start.
        """
        now = self.clock.now()
        dsns = await self._prepare_dsns(started, outcomes, now)
        wait = RECORD_RETRY_FIRST
        try:
            while True:
                try:
                    with trio.CancelScope(shield=True) as cs:
                        cs.deadline = trio.current_time() + FINISH_TIMEOUT
                        applied = await self.store.write(
                            lambda c: self._record(c, started, outcomes, dsns, now)
                        )
                    if not cs.cancelled_caught:
                        break
                    log.error("recording delivery outcomes of %s timed out, retrying", list(started))
                except _RETRYABLE as exc:
                    log.error(
                        "recording delivery outcomes of %s failed, retrying in %.1fs: %s",
                        list(started),
                        wait,
                        exc,
                    )
                await trio.sleep(wait)
                wait = min(wait * 2, RECORD_RETRY_MAX)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.store.remove_unreferenced([d.file_id for d in dsns.values()])
            raise
        unused = [d.file_id for d in dsns.values() if d.file_id not in applied.used_dsn_files]
        await self.store.remove_unreferenced([*applied.file_ids, *unused])

    def _record(
        self,
        conn: Connection,
        started: dict[int, QueueEntry],
        outcomes: builtins.list[RecipientOutcome],
        dsns: dict[int, PreparedDSN],
        now: datetime,
    ) -> Applied:
        """Record outcomes of the entries this node still holds, and free them.

        An entry whose lease was taken over (this node stalled past its lease
        and another node settled the attempt as "outcome unknown") keeps the
        other node's record: this outcome is logged, not recorded, so no
        result, event or webhook is written twice. The other node retries
        the entry; if this attempt had delivered, the recipient gets the
        message a second time, as after any attempt with an unknown outcome.
        """
        held = leases.held_by(
            conn, "queue", {i: e.attempts for i, e in started.items()}, self.node.node_id
        )
        mine = [o for o in outcomes if o.entry_id in held]
        for o in outcomes:
            if o.entry_id in held:
                continue
            if conn.execute("SELECT 1 FROM queue WHERE id = ?", (o.entry_id,)).fetchone():
                log.warning(
                    "queue entry %d: delivery lease lost to another node, outcome not recorded"
                    " (ok=%s, code=%d, error=%r)", o.entry_id, o.ok, o.code, o.error,
                )
        applied = apply_outcomes(conn, self.ctx, mine, dsns, now)
        leases.clear(conn, "queue", held)
        return applied

    # -- reading -------------------------------------------------------------------

    async def list(
        self, f: QueueFilter | None = None, sort: QueueSort | None = None
    ) -> list[QueueEntry]:
        """Entries matching ``f``, sorted (default: NextAttempt descending, as the CLI)."""
        now = self.clock.now()
        return await self.store.read(
            lambda c: select_queue(c, f or QueueFilter(), now, sort or QueueSort())
        )

    async def count(self) -> int:
        """QueueSize: entries in the queue."""
        return await self.store.read(
            lambda c: int(c.execute("SELECT COUNT(*) FROM queue").fetchone()[0])
        )

    async def get(self, entry_id: int) -> QueueEntry:
        return await self.store.read(lambda c: queue_rows.get_queue_entry(c, entry_id))

    async def open_message(self, entry_id: int) -> bytes:
        """The raw message as it would be sent: MsgPrefix + stored file."""
        e = await self.get(entry_id)
        data = await self.store.files.read(e.file_id) if e.file_id else b""
        return e.msg_prefix + data

    async def retired_list(
        self, f: RetiredFilter | None = None, sort: RetiredSort | None = None
    ) -> builtins.list[RetiredEntry]:
        now = self.clock.now()
        return await self.store.read(
            lambda c: select_retired(c, f or RetiredFilter(), now, sort or RetiredSort())
        )

    async def get_retired(self, entry_id: int) -> RetiredEntry:
        return await self.store.read(lambda c: queue_rows.get_retired(c, entry_id))

    # -- admin operations -------------------------------------------------------------

    async def _update(self, f: QueueFilter, sets: str, args: tuple[Any, ...]) -> int:
        now = self.clock.now()

        def tx(c: Connection) -> int:
            n = update_matching(c, f, now, sets, args)
            if n:
                self.node.wakeups.notify(c, "queue")
            return n

        n = await self.store.write(tx)
        self.kick()
        return n

    async def hold(self, f: QueueFilter) -> int:
        """HoldSet(filter, true); returns the number of messages changed."""
        return await self._update(f, "hold = ?", (1,))

    async def hold_matching(self, match: Callable[[QueueEntry], bool]) -> int:
        """Hold every queued entry that ``match`` accepts, in one transaction.

        For plugins whose conditions mox's filter cannot express (hold rules
        match exact domains with AND): the plugin keeps its one matching
        function, used for new entries and existing ones alike, and the queue
        keeps its table. ``match`` runs in the store's writer thread.
        """

        def write(conn: Connection) -> int:
            rows = conn.execute("SELECT * FROM queue WHERE hold = 0").fetchall()
            ids = [e.id for e in map(QueueEntry.from_row, rows) if match(e)]
            conn.executemany("UPDATE queue SET hold = 1 WHERE id = ?", [(i,) for i in ids])
            return len(ids)

        n = await self.store.write(write)
        self.kick()
        return n

    async def retry_now(self) -> int:
        """Make every waiting retry due now (entries tried before, not held).

        For a development server's fast retries: a developer should not wait for the
        7m30s-doubling schedule. Future-release entries (never tried) keep
        their time.
        """
        from core.store.models import to_db_time

        now = to_db_time(self.clock.now())

        def write(conn: Connection) -> int:
            cur = conn.execute(
                "UPDATE queue SET next_attempt = ? WHERE attempts > 0 AND hold = 0"
                " AND next_attempt > ?",
                (now, now),
            )
            return cur.rowcount

        n = await self.store.write(write)
        if n:
            self.kick()
        return n

    async def unhold(self, f: QueueFilter) -> int:
        """HoldSet(filter, false); due messages are delivered right away."""
        return await self._update(f, "hold = ?", (0,))

    async def next_attempt_set(self, f: QueueFilter, when: datetime) -> int:
        from core.store.models import to_db_time

        return await self._update(f, "next_attempt = ?", (to_db_time(when),))

    async def next_attempt_add(self, f: QueueFilter, delta: timedelta) -> int:
        us = delta // timedelta(microseconds=1)
        return await self._update(f, "next_attempt = next_attempt + ?", (us,))

    async def schedule(self, f: QueueFilter, duration: timedelta, from_now: bool = False) -> int:
        """``queue schedule``: NextAttempt = now + d (``from_now``) or NextAttempt + d."""
        if from_now:
            return await self.next_attempt_set(f, self.clock.now() + duration)
        return await self.next_attempt_add(f, duration)

    async def transport(self, f: QueueFilter, name: str) -> int:
        """TransportSet (not validated: an unknown name fails later attempts temporarily)."""
        return await self._update(f, "transport = ?", (name,))

    async def requiretls(self, f: QueueFilter, value: bool | None) -> int:
        return await self._update(f, "require_tls = ?", (None if value is None else int(value),))

    async def fail(self, f: QueueFilter) -> int:
        """Fail matching messages: result "delivery canceled by admin", failure DSN, event failed."""
        return await self._cancel(f, "failed")

    async def drop(self, f: QueueFilter) -> int:
        """Drop matching messages: same result, event canceled, no DSN."""
        return await self._cancel(f, "canceled")

    async def _cancel(self, f: QueueFilter, event: str) -> int:
        now = self.clock.now()
        matches = await self.store.read(lambda c: select_queue(c, f, now))
        dsns: dict[int, PreparedDSN] = {}
        if event == "failed":
            for e in matches:
                if not wants_dsn(e, "failed"):
                    continue
                e2 = copy.copy(e)
                e2.last_attempt = e.last_attempt or now
                try:
                    dsns[e.id] = await prepare_dsn(
                        self.ctx, e2, "failed", error=ADMIN_CANCELED, now=now
                    )
                except Exception:  # noqa: BLE001
                    log.exception("composing DSN for queue message %d", e.id)

        def tx(conn: Connection) -> tuple[int, builtins.list[str], set[str]]:
            n = 0
            files: builtins.list[str] = []
            used: set[str] = set()
            for m in matches:
                try:
                    e = queue_rows.get_queue_entry(conn, m.id)
                except queue_rows.QueueEntryNotFound:
                    continue
                e.results.append(MsgResult(start=now, error=ADMIN_CANCELED))
                if e.last_attempt is None:
                    e.last_attempt = now
                d = dsns.get(e.id)
                if d is not None and store_dsn(conn, self.ctx, d, now) is not None:
                    used.add(d.file_id)
                files.append(retire_entry(conn, self.ctx.config, e, success=False, now=now))
                raise_outgoing_event(
                    conn,
                    self.ctx,
                    e,
                    "failed" if event == "failed" else "canceled",
                    error=ADMIN_CANCELED,
                )
                n += 1
            return n, files, used

        try:
            n, files, used = await self.store.write(tx)
        except BaseException:
            await self.store.remove_unreferenced([d.file_id for d in dsns.values()])
            raise
        unused = [d.file_id for d in dsns.values() if d.file_id not in used]
        await self.store.remove_unreferenced([*files, *unused])
        self.kick()
        return n

    # -- control commands ------------------------------------------------------------------

    def ctl_commands(self) -> builtins.list[CtlCommand]:
        """``queue list|hold|unhold|schedule|transport|requiretls|fail|drop|dump``, ``queue retired list|print``."""
        from core.queue.ctl import queue_commands

        return queue_commands(self)
