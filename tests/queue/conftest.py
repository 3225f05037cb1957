"""Fixtures for the queue tests: a real config + store in tmp_path, the DNS
responder, aiosmtpd sinks, and a recording test plugin on the hook manager."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pluggy
import pytest
import trio

from core import hookspecs
from core.address import Address, parse_address
from core.cluster import ClusterNode
from core.config import load_config
from core.dispatch import HookDispatcher
from core.dns import Resolver
from core.events import DeliveryOutcome, OutgoingEvent
from core.hookspecs import hookimpl
from core.plugin_api import PluginContext
from core.queue.add import AddRecipient, AddRequest
from core.queue.clock import FakeClock
from core.queue.deliver import DeliverySettings
from core.queue.scheduler import QueueSettings
from core.queue.service import QueueService
from core.store import Store
from core.store.accounts import ensure_account
from core.store.settings import DatabaseSettings
from tests.support import backend
from tests.support.dnsresponder import dns_responder_factory
from tests.support.queuewait import deliveries_idle, wait_scheduler_round, wait_settled
from tests.support.smtpsink import open_smtp_sink

MOX_CONF = """DataDir: data
User: 1000
LogLevel: info
Hostname: mail.example
Postmaster:
	Account: mjl
	Mailbox: Postmaster
Listeners:
	local:
		IPs:
			- 127.0.0.1
Transports:
	failer:
		Fail:
			SMTPCode: 552
			SMTPMessage: no way
	soft:
		Fail:
			SMTPCode: 451
	smarthost:
		Submission:
			Host: submission.example
"""

DOMAINS_CONF = """Domains:
	mail.example:
		LocalpartCatchallSeparator: +
	disabled.example:
		Disabled: true
Accounts:
	mjl:
		Domain: mail.example
		Destinations:
			mjl@mail.example: nil
		KeepRetiredMessagePeriod: 72h0m0s
	nokeep:
		Domain: mail.example
		Destinations:
			nokeep@mail.example: nil
	dis:
		Domain: disabled.example
		Destinations:
			dis@disabled.example: nil
		KeepRetiredMessagePeriod: 1h0m0s
"""

START = datetime(2026, 11, 24, 0, 0, 0, tzinfo=UTC)


def write_config(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "mox.conf").write_text(MOX_CONF)
    (directory / "domains.conf").write_text(DOMAINS_CONF)
    return directory / "mox.conf"


@dataclass
class Recorder:
    """A test plugin: records events and hook order; configurable verdicts."""

    calls: list[tuple[str, Any]] = field(default_factory=list)
    events: list[OutgoingEvent] = field(default_factory=list)
    suppress: set[str] = field(default_factory=set)  # recipients to mark suppressing
    precheck_suppressed: set[str] = field(default_factory=set)
    hold_all: bool = False
    in_tx: list[bool] = field(default_factory=list)

    @hookimpl
    def moxtrio_queue_adding(self, conn: sqlite3.Connection, entries: list[Any]) -> None:
        self.calls.append(("adding", [e.recipient for e in entries]))
        self.in_tx.append(conn.in_transaction)
        if self.hold_all:
            for e in entries:
                e.hold = True

    @hookimpl
    def moxtrio_delivery_precheck(self, conn: sqlite3.Connection, entry: Any) -> Any:
        self.calls.append(("precheck", entry.recipient))
        if entry.recipient in self.precheck_suppressed:
            return DeliveryOutcome(
                event="suppressed",
                permanent=True,
                error=f"not delivering to recipient address {entry.recipient}: address is on suppression list, permanent",
            )
        return None

    @hookimpl
    def moxtrio_suppress_decision(
        self, conn: sqlite3.Connection, entry: Any, outcome: DeliveryOutcome
    ) -> Any:
        self.calls.append(("suppress", (entry.recipient, outcome.smtp_code)))
        self.in_tx.append(conn.in_transaction)
        return True if entry.recipient in self.suppress else None

    @hookimpl
    def moxtrio_outgoing_event(self, conn: sqlite3.Connection, event: OutgoingEvent) -> None:
        self.calls.append(("event", (event.recipient, event.event)))
        self.in_tx.append(conn.in_transaction)
        self.events.append(event)

    def events_for(self, rcpt: str) -> list[str]:
        return [e.event for e in self.events if e.recipient == rcpt]


@dataclass
class Harness:
    ctx: PluginContext
    queue: QueueService
    clock: FakeClock
    recorder: Recorder
    nursery: trio.Nursery
    dns: Any
    dir: Path

    async def add(
        self,
        rcpts: list[str],
        *,
        sender: str = "mjl@mail.example",
        account: str = "mjl",
        body: bytes | None = None,
        **kw: Any,
    ) -> list[Any]:
        data = body or (
            b"From: <mjl@mail.example>\r\nTo: <x@example.org>\r\nSubject: test\r\n"
            b"Message-Id: <m1@mail.example>\r\n\r\nhello\r\n"
        )
        file_id = await self.ctx.store.files.store(data)
        req = AddRequest(
            account=account,
            mail_from=parse_address(sender) if sender else None,
            recipients=[
                r if isinstance(r, AddRecipient) else AddRecipient(parse_address(r)) for r in rcpts
            ],
            file_id=file_id,
            msg_prefix=kw.pop(
                "msg_prefix", b"Received: from test by mail.example; 24 Nov 2026\r\n"
            ),
            message_id=kw.pop("message_id", "<m1@mail.example>"),
            subject=kw.pop("subject", "test"),
            **kw,
        )
        return await self.queue.add(req)

    def point_domain(self, domain: str, ip: str = "127.0.0.1", mx: str = "") -> None:
        records = dict(self.dns._records)
        host = mx or f"mx.{domain}"
        records[domain] = {"MX": [f"10 {host}."]}
        records[host] = {"A": [ip]}
        self.dns.set_records(records)

    async def wait_for(self, pred: Callable[[], Any], timeout: float = 10.0) -> None:
        """Wait until ``pred()`` holds and the deliveries behind it have committed.

        The recorder sees events inside the delivery transaction, before its
        commit; the rows, DSNs and files a test checks next are only there
        once the delivery finished.
        """
        await wait_settled(self.queue, pred, timeout)

    async def nothing_started(self, timeout: float = 10.0) -> bool:
        """Let the scheduler look at the queue as it is now; True if that
        round started no delivery (for "not due yet" checks)."""
        await wait_scheduler_round(self.queue, timeout)
        return deliveries_idle(self.queue)

    async def retired(self, entry_id: int) -> Any:
        from core.store.queue_rows import get_retired

        return await self.ctx.store.read(lambda c: get_retired(c, entry_id))

    async def queued(self, entry_id: int) -> Any:
        from core.store.queue_rows import QueueEntryNotFound, get_queue_entry

        def get(c: sqlite3.Connection) -> Any:
            try:
                return get_queue_entry(c, entry_id)
            except QueueEntryNotFound:
                return None

        return await self.ctx.store.read(get)

    async def inbox(self, account: str = "mjl", mailbox: str = "Inbox") -> list[Any]:
        from core.store.messages import list_messages

        return await self.ctx.store.read(lambda c: list_messages(c, account, mailbox))


@pytest.fixture
def dns_responder() -> Iterator[Any]:
    with dns_responder_factory() as make:
        yield make


def make_pm(*plugins: object) -> pluggy.PluginManager:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for p in plugins:
        pm.register(p)
    return pm


@pytest.fixture
async def harness_factory(
    tmp_path: Path, dns_responder: Any, nursery: trio.Nursery
) -> AsyncIterator[Callable[..., Any]]:
    stores: list[Store] = []
    running: list[tuple[trio.CancelScope, trio.Event]] = []

    async def run_queue(queue: QueueService, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        done = trio.Event()
        try:
            with trio.CancelScope() as cs:
                running.append((cs, done))
                await queue.run(task_status=task_status)
        finally:
            done.set()

    async def make(
        sink_port: int = 25,
        *,
        settings: QueueSettings | None = None,
        plugins: tuple[object, ...] = (),
        start: bool = True,
        node: ClusterNode | None = None,
        **delivery_kw: Any,
    ) -> Harness:
        conf = write_config(tmp_path / "config")
        config = load_config(conf)
        store = await Store.open(config.data_dir, database=backend.current())
        stores.append(store)

        def accounts(c: sqlite3.Connection) -> None:
            for name in config.dynamic.Accounts:
                ensure_account(c, name)

        await store.write(accounts)
        recorder = Recorder()
        hooks = HookDispatcher(make_pm(recorder, *plugins))
        ctx = PluginContext(config=config, store=store, hooks=hooks)
        if node is not None:
            ctx.cluster = node
        dns = dns_responder({})
        ctx.resolver = Resolver(
            dns.nameservers, port=dns.port, timeout=2, lifetime=4
        )
        clock = FakeClock(START)
        settings = settings or QueueSettings(
            delivery=DeliverySettings(
                smtp_port=sink_port,
                dial_timeout=3,
                session_timeout=5,
                read_timeout=5,
                **delivery_kw,
            )
        )
        queue = QueueService(ctx, clock=clock, settings=settings)
        ctx.queue = queue
        if start:
            await nursery.start(run_queue, queue)
        return Harness(ctx, queue, clock, recorder, nursery, dns, tmp_path)

    try:
        yield make
    finally:
        for cs, done in running:
            cs.cancel()
            await done.wait()
        for s in stores:
            await s.aclose()


@pytest.fixture
def sink_factory(tmp_path: Path) -> Callable[..., Any]:
    counter = [0]

    def make(**kw: Any) -> Any:
        counter[0] += 1
        return open_smtp_sink(tmp_path / f"sink{counter[0]}", **kw)

    return make


def addr(s: str) -> Address:
    return parse_address(s)


def later(h: Harness, **kw: float) -> None:
    h.clock.advance(timedelta(**kw))


@pytest.fixture(autouse=True)
def _both_backends(default_db_backend: DatabaseSettings | None) -> DatabaseSettings | None:
    """Every test here runs on SQLite and on PostgreSQL (ids ``sqlite``/``postgres``)."""
    return default_db_backend
