"""End to end through the core queue over real SMTP: the plugin loaded on the
real hook dispatcher, the core QueueService delivering to an independent
aiosmtpd server (tests/support/smtpsink.py) found through a local DNS
responder. Shows automatic listing from real SMTP replies, the suppressed
send that fails at once with its ``suppressed`` event and failure DSN, and
that a listed recipient never rides along in a batch.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from core.address import parse_address
from core.config import load_config
from core.dispatch import HookDispatcher
from core.dns import Resolver
from core.events import OutgoingEvent
from core.hookspecs import hookimpl
from core.message.dsn import parse_dsn
from core.plugin_api import PluginContext
from core.plugins import create_manager
from core.queue.add import AddRecipient, AddRequest
from core.queue.clock import FakeClock
from core.queue.deliver import DeliverySettings
from core.queue.scheduler import QueueSettings
from core.queue.service import QueueService
from core.store import Store
from core.store.accounts import ensure_account
from core.store.messages import list_messages
from core.store.queue_rows import get_retired
from plugins.suppression.base import parse_recipient
from plugins.suppression.records import list_suppressions
from plugins.suppression.service import SuppressionService
from tests.support import backend
from tests.support.dnsresponder import dns_responder_factory
from tests.support.queuewait import wait_settled
from tests.support.smtpsink import open_smtp_sink
from tests.suppression.conftest import write_config

START = datetime(2026, 11, 24, 0, 0, 0, tzinfo=UTC)


@dataclass
class Events:
    """Records outgoing events (what the webhooks plugin would turn into webhooks)."""

    events: list[OutgoingEvent] = field(default_factory=list)

    @hookimpl
    def moxtrio_outgoing_event(self, conn: sqlite3.Connection, event: OutgoingEvent) -> None:
        self.events.append(event)

    def for_rcpt(self, rcpt: str) -> list[OutgoingEvent]:
        return [e for e in self.events if e.recipient == rcpt]


@dataclass
class Harness:
    ctx: PluginContext
    queue: QueueService
    events: Events
    dns: Any

    async def send(self, rcpts: list[str], account: str = "mox") -> list[Any]:
        data = (
            b"From: <mox@mail.example>\r\nTo: <x@example.org>\r\nSubject: hi\r\n"
            b"Message-Id: <s1@mail.example>\r\n\r\nhello\r\n"
        )
        file_id = await self.ctx.store.files.store(data)
        return await self.queue.add(
            AddRequest(
                account=account,
                mail_from=parse_address(f"{account}@mail.example"),
                recipients=[AddRecipient(parse_address(r)) for r in rcpts],
                file_id=file_id,
                message_id="<s1@mail.example>",
                subject="hi",
            )
        )

    async def wait_events(self, n: int, timeout: float = 15.0) -> None:
        """Wait until ``n`` events were raised and their transactions committed.

        Events are recorded in the store's writer thread before the commit,
        so a suppression entry or DSN written with the event is only
        readable once the delivery that raised it has finished.
        """
        await wait_settled(self.queue, lambda: len(self.events.events) >= n, timeout)

    async def listed(self, account: str = "") -> list[Any]:
        return await self.ctx.store.read(lambda c: list_suppressions(c, account))

    async def inbox(self, account: str = "mox") -> list[Any]:
        return await self.ctx.store.read(lambda c: list_messages(c, account, "Inbox"))


@pytest.fixture
def dns_responder() -> Iterator[Any]:
    with dns_responder_factory() as make:
        yield make


@pytest.fixture
async def harness(
    tmp_path: Path, dns_responder: Any, nursery: trio.Nursery
) -> AsyncIterator[Callable[[int], Any]]:
    stores: list[Store] = []
    scopes: list[tuple[trio.CancelScope, trio.Event]] = []

    async def run(queue: QueueService, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        done = trio.Event()
        try:
            with trio.CancelScope() as cs:
                scopes.append((cs, done))
                await queue.run(task_status=task_status)
        finally:
            done.set()

    async def make(port: int) -> Harness:
        config = load_config(write_config(tmp_path / "config"))
        events = Events()
        hooks = HookDispatcher(create_manager(["suppression"], extra_modules=[events]))
        store = await Store.open(config.data_dir, hooks.setup("moxtrio_migrations"), database=backend.current())
        stores.append(store)

        def accounts(c: sqlite3.Connection) -> None:
            for name in config.dynamic.Accounts:
                ensure_account(c, name)

        await store.write(accounts)
        ctx = PluginContext(config=config, store=store, hooks=hooks)
        hooks.setup("moxtrio_configure", ctx=ctx)
        dns = dns_responder(
            {
                "example.org": {"MX": ["10 mx.example.org."]},
                "mx.example.org": {"A": ["127.0.0.1"]},
            }
        )
        ctx.resolver = Resolver(
            dns.nameservers, port=dns.port, timeout=2, lifetime=4
        )
        settings = QueueSettings(
            max_per_domain=1,
            delivery=DeliverySettings(
                smtp_port=port, dial_timeout=3, session_timeout=5, read_timeout=5
            ),
        )
        queue = QueueService(ctx, clock=FakeClock(START), settings=settings)
        ctx.queue = queue
        await nursery.start(run, queue)
        return Harness(ctx, queue, events, dns)

    try:
        yield make
    finally:
        for cs, done in scopes:
            cs.cancel()
            await done.wait()
        for s in stores:
            await s.aclose()


async def test_550_suppresses_then_next_send_fails_at_once(harness: Any, tmp_path: Path) -> None:
    async with open_smtp_sink(
        tmp_path / "sink", rcpt_replies={"john.doe@example.org": "550 5.1.1 no such user"}
    ) as sink:
        h = await harness(sink.port)
        [first] = await h.send(["John.Doe@example.org"])
        await h.wait_events(1)
        ev = h.events.events[0]
        assert (ev.event, ev.smtp_code, ev.smtp_enhanced_code, ev.suppressing) == (
            "failed",
            550,
            "5.1.1",
            True,
        )
        [sup] = await h.listed()
        assert (sup.account, sup.base_address, sup.original_address, sup.manual) == (
            "mox",
            "johndoe@example.org",
            "John.Doe@example.org",
            False,
        )
        assert sup.reason == 'delivery failure from queue with smtp code 550, enhanced code "1.1"'

        # A later send to a variant of the address: settled without SMTP.
        connections_before = len(sink.messages())
        [second] = await h.send(["johndoe+news@example.org"])
        await h.wait_events(2)
        ev2 = h.events.events[1]
        assert ev2.queue_msg_id == second.id
        assert (ev2.event, ev2.smtp_code, ev2.smtp_enhanced_code, ev2.suppressing) == (
            "suppressed",
            0,
            "",
            False,
        )
        error = (
            "not delivering to recipient address johndoe+news@example.org:"
            " address is on suppression list, permanent"
        )
        assert ev2.error == error
        assert len(sink.messages()) == connections_before == 0
        r = await h.ctx.store.read(lambda c: get_retired(c, second.id))
        assert (r.success, r.attempts, r.last_attempt) == (False, 1, START)
        assert (r.results[-1].code, r.results[-1].error, r.results[-1].success) == (0, error, False)
        # A failure DSN for each of the two messages reached the sender.
        inbox = await h.inbox()
        assert len(inbox) == 2 and all(m.is_dsn for m in inbox)
        dsn = parse_dsn(await h.ctx.store.files.read(inbox[1].file_id))
        assert dsn is not None
        [d] = dsn.recipients
        assert (d.action, d.address) == ("failed", "johndoe+news@example.org")
        # Still only one entry: the suppressed send added nothing.
        assert len(await h.listed()) == 1


async def test_554_third_consecutive_failure(harness: Any, tmp_path: Path) -> None:
    rcpt = "three554@example.org"
    async with open_smtp_sink(tmp_path / "sink", rcpt_replies={rcpt: "554 5.0.0 go away"}) as sink:
        h = await harness(sink.port)
        for i in range(3):
            await h.send([rcpt])
            await h.wait_events(i + 1)
        assert [(e.event, e.smtp_code, e.suppressing) for e in h.events.events] == [
            ("failed", 554, False),
            ("failed", 554, False),
            ("failed", 554, True),
        ]
        [sup] = await h.listed()
        assert sup.reason == "delivery failure from queue and three consecutive failures"
        await h.send([rcpt])
        await h.wait_events(4)
        assert h.events.events[3].event == "suppressed"


async def test_listed_recipient_never_joins_a_batch(harness: Any, tmp_path: Path) -> None:
    async with open_smtp_sink(tmp_path / "sink") as sink:
        h = await harness(sink.port)
        await h.ctx.service(SuppressionService).add(
            "mox", parse_recipient("b@example.org"), manual=True, reason="test"
        )
        entries = await h.send(["a@example.org", "b@example.org", "c@example.org"])
        assert len({e.base_id for e in entries}) == 1 and entries[0].base_id != 0
        await h.wait_events(3)
        assert {e.recipient: e.event for e in h.events.events} == {
            "a@example.org": "delivered",
            "b@example.org": "suppressed",
            "c@example.org": "delivered",
        }
        # One SMTP transaction, without the listed recipient.
        assert [sorted(m.rcpt_tos) for m in sink.messages()] == [["a@example.org", "c@example.org"]]


async def test_other_accounts_list_does_not_stop_delivery(harness: Any, tmp_path: Path) -> None:
    async with open_smtp_sink(tmp_path / "sink") as sink:
        h = await harness(sink.port)
        await h.ctx.service(SuppressionService).add(
            "other", parse_recipient("a@example.org"), manual=True, reason=""
        )
        await h.send(["a@example.org"], account="mox")
        await h.wait_events(1)
        assert h.events.events[0].event == "delivered"
        await h.send(["a@example.org"], account="other")
        await h.wait_events(2)
        assert h.events.events[1].event == "suppressed"
        assert len(sink.messages()) == 1
