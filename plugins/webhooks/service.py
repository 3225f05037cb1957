"""WebhookService: the webhook queue's worker, in-transaction entry points and admin operations.

Scheduling: a loop claims due hooks (oldest NextAttempt
first, at most ``max_concurrent`` in flight, at most one per URL) in one
write transaction, delivers each in its own task, and otherwise sleeps
until the earliest NextAttempt of a free URL. It is woken when a hook is
queued (after the commit: the claim is itself a write, so it is ordered
after the transaction that inserted the hook), rescheduled, or finished,
and whenever an injected fake clock moves.

The clock is ``ctx.clock`` (tests run the
32-hour schedule in milliseconds), else the system clock.
"""

from __future__ import annotations

import builtins
import contextlib
import logging
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import trio

from core.cluster import lease as leases
from core.cluster.node import now_us
from core.mlog import kv
from core.store.models import to_db_time
from core.store.sql import Connection
from moxtrio import Clock, IncomingDelivered, OutgoingEvent, PluginConfigError, PluginContext
from plugins.webhooks import queue_ops
from plugins.webhooks.admin import (
    HookFilter,
    HookRetiredFilter,
    HookRetiredSort,
    HookSort,
    select_hooks,
    select_retired,
)
from plugins.webhooks.attempt_log import report_webhook
from plugins.webhooks.destination import (
    SETTING,
    DestinationPolicy,
    IPNetwork,
    parse_networks,
)
from plugins.webhooks.payload import incoming_meta, incoming_payload, outgoing_payload
from plugins.webhooks.queue_ops import AttemptOutcome
from plugins.webhooks.records import Hook, RetiredHook, get_hook, get_retired
from plugins.webhooks.redelivery import redeliver_exactly

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("moxtrio.webhooks")

CLEANUP_FIRST = 4.0
CLEANUP_INTERVAL = 3600.0
IDLE_MAX = 24 * 3600.0
DB_ERROR_RETRY = 60.0
#: Re-check interval while due hooks wait for a URL another node is posting to.
BLOCKED_POLL = 1.0
#: Pause (jittered) before claiming again when another node held the claim lock.
CONTENDED_RETRY = 0.05
FINISH_TIMEOUT = 30.0


@dataclass
class WebhookSettings:
    """``<config dir>/plugins/webhooks.yaml``: MaxConcurrent (10), Timeout (60 s)."""

    max_concurrent: int = 10
    timeout: float = 60.0
    #: Internal networks webhooks may reach outside localserve.
    allowed_networks: list[IPNetwork] = field(default_factory=list)


class HookNotFound(LookupError):
    pass


class WebhookService:
    """One per server; ``ctx.service(WebhookService)``."""

    def __init__(
        self,
        ctx: PluginContext,
        *,
        clock: Clock | None = None,
        settings: WebhookSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.ctx = ctx
        self.store = ctx.store
        self.clock: Clock = clock or ctx.clock
        self.settings = settings or _load_settings(ctx)
        self.rng = rng or random.Random()
        self._wake = trio.Event()
        self._busy: set[str] = set()
        self._inflight = 0
        self.attempts_made = 0
        # Made when the first webhook is due (httpx is imported then), closed
        # when the worker stops.
        self.client: httpx.AsyncClient | None = None
        self._exits: contextlib.AsyncExitStack | None = None
        subscribe = getattr(self.clock, "subscribe", None)
        if subscribe is not None:
            subscribe(self.kick)

    # -- waking ------------------------------------------------------------------

    def kick(self) -> None:
        """Wake the delivery loop (trio thread only)."""
        self._wake.set()

    # -- in-transaction entry points (called by the hook implementations) --------

    def on_outgoing_event(self, conn: Connection, event: OutgoingEvent) -> Hook | None:
        """Queue an outgoing webhook for ``event`` if the account wants it."""
        acc = self.ctx.config.account(event.account)
        wh = acc.OutgoingWebhook if acc is not None else None
        if wh is None or not wh.URL or not wh.wants(event.event):
            return None
        now = self.clock.now()
        # Events derived from an incoming message don't carry Extra on the
        # hook record (the payload still has the original's).
        derived = event.dsn or event.event == "unrecognized"
        hook = Hook(
            queue_msg_id=event.queue_msg_id,
            from_id=event.from_id,
            message_id=(event.incoming_message_id or event.message_id) if derived else event.message_id,
            subject=event.subject,
            extra=None if derived else event.extra,
            account=event.account,
            url=wh.URL,
            authorization=wh.Authorization,
            outgoing_event=event.event,
            payload=outgoing_payload(event, now),
            submitted=now,
            next_attempt=now,
        )
        queue_ops.queue_hook(conn, self.ctx.config, hook, now)
        self.ctx.cluster.wakeups.notify(conn, "webhooks")
        return hook

    def on_incoming(self, conn: Connection, delivered: IncomingDelivered) -> Hook | None:
        """Queue an incoming webhook for a delivered message."""
        acc = self.ctx.config.account(delivered.account)
        wh = acc.IncomingWebhook if acc is not None else None
        if wh is None or not wh.URL:
            return None
        fields = delivered.fields
        if fields is None:
            # The core parses the message before the transaction when any
            # account has an incoming webhook; None means the message could
            # not be parsed (mox sends no webhook then) or the webhook was
            # configured while the message was being delivered. Reading the
            # file here would stall every writer of the store, so no webhook.
            log.info("no parsed message for incoming webhook, none sent",
                     extra=kv(account=delivered.account, msgid=delivered.message_id))
            return None
        automated = delivered.meta.get("Automated", delivered.mail_from == "")
        now = self.clock.now()
        payload = incoming_payload(fields, incoming_meta(delivered, bool(automated)))
        hook = Hook(
            message_id=str(fields.get("MessageID", "")),
            subject=str(fields.get("Subject", "")),
            account=delivered.account,
            url=wh.URL,
            authorization=wh.Authorization,
            is_incoming=True,
            payload=payload,
            submitted=now,
            next_attempt=now,
        )
        queue_ops.queue_hook(conn, self.ctx.config, hook, now)
        self.ctx.cluster.wakeups.notify(conn, "webhooks")
        return hook

    # -- the worker ------------------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Delivery loop and retired cleanup; ``started()`` once running."""
        now = self.clock.now()
        node = self.ctx.cluster
        node.wakeups.subscribe("webhooks", self.kick)
        released = await self.store.write(
            lambda c: queue_ops.release_interrupted(c, now, node.node_id, shared=node.shared)
        )
        if released:
            log.info("%d webhook attempts interrupted by the last stop are due again", released)
        async with contextlib.AsyncExitStack() as exits, trio.open_nursery() as nursery:
            self._exits = exits
            nursery.start_soon(self._cleanup_loop)
            nursery.start_soon(self._renew_loop)
            task_status.started()
            await self._loop(nursery)

    def _client(self) -> httpx.AsyncClient:
        """The shared client: bounded pool, connections only where the policy allows."""
        if self.client is None:
            from plugins.webhooks.sender import make_client

            assert self._exits is not None
            s = self.settings
            policy = DestinationPolicy(s.allowed_networks, allow_all=self.ctx.localserve)
            self.client = make_client(s.timeout, s.max_concurrent, policy, self._lookup)
            self._exits.push_async_callback(self.client.aclose)
        return self.client

    async def _loop(self, nursery: trio.Nursery) -> None:
        while True:
            wake = trio.Event()
            self._wake = wake
            try:
                delay = await self._round(nursery)
            except Exception:  # noqa: BLE001 - retry later, don't stop delivering
                log.exception("webhook queue: scheduling round failed")
                delay = DB_ERROR_RETRY
            if delay > 0:
                with trio.move_on_after(delay):
                    await wake.wait()

    async def _round(self, nursery: trio.Nursery) -> float:
        free = self.settings.max_concurrent - self._inflight
        now = self.clock.now()
        busy = set(self._busy)
        rng = self.rng
        node = self.ctx.cluster
        until = node.lease_until()
        claim = await self.store.write(
            lambda c: queue_ops.start_attempts(c, now, busy, free, rng, node.node_id, until)
        )
        if claim.contended:
            return CONTENDED_RETRY * (1 + self.rng.random())
        if claim.taken_over:
            log.warning(
                "took over %d webhooks whose lease expired (their node stopped); posting again",
                claim.taken_over,
            )
        for hook in claim.hooks:
            self._busy.add(hook.url)
            self._inflight += 1
            nursery.start_soon(self._deliver, hook, now)
        delay = IDLE_MAX  # a finishing delivery or a new hook kicks us
        if free - len(claim.hooks) > 0 and claim.next_due is not None:
            delay = max(0.0, (claim.next_due - self.clock.now()).total_seconds())
            if delay == 0.0:
                # Due but passed over (locked by another claim): look again soon.
                delay = BLOCKED_POLL
        if claim.blocked:
            # Due, but its URL is in flight on another node, which does not wake us.
            delay = min(delay, BLOCKED_POLL)
        if claim.next_expiry is not None:
            delay = min(delay, max(0.0, (claim.next_expiry - now_us()) / 1e6) + 0.01)
        return min(IDLE_MAX, delay)

    async def _renew_loop(self) -> None:
        """Keep this node's webhook leases alive while posts run."""
        node = self.ctx.cluster
        while True:
            await trio.sleep(node.renew_every)
            if not self._inflight:
                continue
            until = node.lease_until()

            def renew(c: Connection, until: int = until) -> int:
                return leases.renew(c, queue_ops.TABLE, node.node_id, until)

            try:
                await self.store.write(renew)
            except Exception:  # noqa: BLE001 - try again at the next interval
                log.exception("renewing webhook leases")

    async def _lookup(self, host: str) -> list[str]:
        """Addresses of a webhook host, through the server's resolver (as mail delivery).

        ``localhost`` names are loopback without asking DNS (RFC 6761), as
        the system resolver answers them from /etc/hosts.
        """
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return ["127.0.0.1", "::1"]
        return list(await self.ctx.resolver.lookup_ips(host))

    def _secret(self, account: str) -> str:
        acc = self.ctx.config.account(account)
        return acc.WebhookSigningSecret if acc is not None else ""

    async def _deliver(self, hook: Hook, start: datetime) -> None:
        from plugins.webhooks.sender import describe, post_hook

        try:
            try:
                outcome = await post_hook(
                    self._client(),
                    hook,
                    time_limit=self.settings.timeout,
                    secret=self._secret(hook.account),
                    start=start,
                )
            except Exception as exc:  # noqa: BLE001 - recorded as a failed attempt
                log.exception("webhook %d: unexpected error", hook.id)
                outcome = AttemptOutcome(success=False, error=describe(exc), start=start)
            self.attempts_made += 1
            config = self.ctx.config
            node = self.ctx.cluster.node_id
            with trio.CancelScope(shield=True) as cs:
                cs.deadline = trio.current_time() + FINISH_TIMEOUT
                state = await self.store.write(
                    lambda c: queue_ops.finish_attempt(
                        c, config, hook.id, outcome, node, hook.attempts
                    )
                )
            if state == "lost":
                log.warning(
                    "webhook %d: lease lost to another node, outcome not recorded (success=%s)",
                    hook.id, outcome.success,
                )
            report_webhook(hook, outcome, state)
        finally:
            self._busy.discard(hook.url)
            self._inflight -= 1
            self.kick()

    async def _cleanup_loop(self) -> None:
        await trio.sleep(CLEANUP_FIRST)
        while True:
            try:
                n = await self.cleanup_retired()
                if n:
                    log.info("removed %d expired retired webhooks", n)
            except Exception:  # noqa: BLE001 - try again next hour
                log.exception("cleaning up retired webhooks")
            await trio.sleep(CLEANUP_INTERVAL)

    async def cleanup_retired(self) -> int:
        now = self.clock.now()
        return await self.store.write(lambda c: queue_ops.cleanup_retired(c, now))

    # -- admin operations -------------------------------------------------

    async def list(self, f: HookFilter | None = None, sort: HookSort | None = None) -> builtins.list[Hook]:
        now = self.clock.now()
        return await self.store.read(
            lambda c: select_hooks(c, f or HookFilter(), now, sort or HookSort())
        )

    async def queue_size(self) -> int:
        return await self.store.read(
            lambda c: int(c.execute("SELECT COUNT(*) FROM webhook_queue").fetchone()[0])
        )

    async def get(self, hook_id: int) -> Hook:
        hook = await self.store.read(lambda c: get_hook(c, hook_id))
        if hook is None:
            raise HookNotFound(hook_id)
        return hook

    async def retired_list(
        self, f: HookRetiredFilter | None = None, sort: HookRetiredSort | None = None
    ) -> builtins.list[RetiredHook]:
        now = self.clock.now()
        return await self.store.read(
            lambda c: select_retired(c, f or HookRetiredFilter(), now, sort or HookRetiredSort())
        )

    async def get_retired(self, hook_id: int) -> RetiredHook:
        hook = await self.store.read(lambda c: get_retired(c, hook_id))
        if hook is None:
            raise HookNotFound(hook_id)
        return hook

    async def redeliver(self, ids: builtins.list[int]) -> builtins.list[int]:
        """Queue these retired webhooks again as new ones (all or none); their new IDs.

        The admin interface's "Redeliver": unlike the account-scoped webapi
        method it may reach every account's webhooks. Raises
        :class:`~plugins.webhooks.redelivery.RedeliveryError` (a ValueError).
        """
        now = self.clock.now()
        config = self.ctx.config
        new_ids = await self.store.write(lambda c: redeliver_exactly(c, config, ids, now))
        self.kick()
        return new_ids

    async def next_attempt_set(self, f: HookFilter, when: datetime) -> int:
        """HookNextAttemptSet: NextAttempt = ``when`` for all matches (Attempts unchanged)."""
        return await self._update(f, "next_attempt = ?", (to_db_time(when),))

    async def next_attempt_add(self, f: HookFilter, delta: timedelta) -> int:
        us = delta // timedelta(microseconds=1)
        return await self._update(f, "next_attempt = next_attempt + ?", (us,))

    async def schedule(self, f: HookFilter, duration: timedelta, from_now: bool = False) -> int:
        """``queue webhook schedule``: now + d with ``-now``, else NextAttempt + d."""
        if from_now:
            return await self.next_attempt_set(f, self.clock.now() + duration)
        return await self.next_attempt_add(f, duration)

    async def _update(self, f: HookFilter, sets: str, args: tuple[Any, ...]) -> int:
        now = self.clock.now()

        def tx(conn: Connection) -> int:
            ids = [h.id for h in select_hooks(conn, f, now)]
            for hook_id in ids:
                conn.execute(f"UPDATE webhook_queue SET {sets} WHERE id = ?", (*args, hook_id))
            return len(ids)

        n = await self.store.write(tx)
        self.kick()
        return n

    async def cancel(self, f: HookFilter) -> int:
        """HookCancel: remove matches, retire with "canceled by admin" (if kept)."""
        now = self.clock.now()
        config = self.ctx.config

        def tx(conn: Connection) -> int:
            ids = [h.id for h in select_hooks(conn, f, now)]
            return queue_ops.cancel_hooks(conn, config, ids, now)

        n = await self.store.write(tx)
        self.kick()
        return n


def _load_settings(ctx: PluginContext) -> WebhookSettings:
    s = WebhookSettings()
    try:
        data = ctx.plugin_settings("webhooks")
    except Exception as exc:  # noqa: BLE001 - bad file: say so, keep defaults
        log.error("webhooks settings: %s", exc)
        return s
    s.max_concurrent = max(1, int(data.get("MaxConcurrent", s.max_concurrent)))
    s.timeout = float(data.get("Timeout", s.timeout))
    try:
        s.allowed_networks = parse_networks(data.get(SETTING))
    except ValueError as exc:
        # Refusing to start beats guessing what the administrator meant to allow.
        raise PluginConfigError(f"plugins/webhooks.yaml: {exc}") from exc
    return s
