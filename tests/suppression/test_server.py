"""End to end in a whole in-process localserve: the core queue delivering over
SMTP to localserve's own listener (its failure simulation), the plugin's
commands over the real control socket.

``userpermerror@example.org`` gets localserve's ``550 5.0.0``:
suppressed on the first failure; the next send to it fails at once with a
``suppressed`` event and a failure DSN.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio

from core import ctl
from core.address import parse_address
from core.events import OutgoingEvent
from core.hookspecs import hookimpl
from core.plugin_api import CtlResult
from core.queue.add import AddRecipient, AddRequest
from core.runtime import Server
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.queuewait import wait_settled

HEADER = "suppressions (account, address, manual, time added, base adddress, reason):\n"
MESSAGE = (
    b"From: <mox@localhost>\r\nTo: <userpermerror@example.org>\r\nSubject: hi\r\n\r\nhello\r\n"
)


@dataclass
class Events:
    """Records outgoing events as the webhooks plugin receives them."""

    events: list[OutgoingEvent] = field(default_factory=list)

    @hookimpl
    def moxtrio_outgoing_event(self, conn: sqlite3.Connection, event: OutgoingEvent) -> None:
        self.events.append(event)


@dataclass
class Running:
    server: Server
    events: Events
    ip: str

    async def ctl(self, *argv: str) -> CtlResult:
        path = Path(self.server.listening.ctl)
        return await trio.to_thread.run_sync(lambda: ctl.call(path, list(argv), timeout=20))

    async def queue_send(self, rcpt: str) -> None:
        """Queue a message the way webapi Send does (no check at submission;
        SMTP submission would refuse a special localpart at DATA)."""
        ctx = self.server.ctx
        assert ctx is not None
        file_id = await ctx.store.files.store(MESSAGE)
        await ctx.queue.add(
            AddRequest(
                account="mox",
                mail_from=parse_address("mox@localhost"),
                recipients=[AddRecipient(parse_address(rcpt))],
                file_id=file_id,
                subject="hi",
            )
        )

    async def wait_events(self, n: int, timeout: float = 20.0) -> list[OutgoingEvent]:
        """Wait until ``n`` events were raised and their transactions committed.

        Events are recorded in the store's writer thread before the commit;
        the suppression entry, retired row and DSN written with an event are
        only readable once the delivery that raised it has finished.
        """
        assert self.server.ctx is not None
        queue = self.server.ctx.queue
        await wait_settled(queue, lambda: len(self.events.events) >= n, timeout)
        return self.events.events


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    directory, ip = localserve_config_dir(tmp_path)
    events = Events()
    async with running_server(directory, extra_plugins=[events]) as server:
        yield Running(server, events, ip)


async def test_commands_over_the_control_socket(running: Running) -> None:
    assert await running.ctl("queue", "suppress", "list") == CtlResult(HEADER + "(none)\n", 0)
    assert await running.ctl(
        "queue", "suppress", "add", "mox", "John.Doe+x@example.org"
    ) == CtlResult("", 0)
    out = await running.ctl("queue", "suppress", "list", "-account", "mox")
    assert out.exit_code == 0
    [line] = out.output[len(HEADER) :].splitlines()
    fields = line.split("\t")
    assert fields[:3] == ['"mox"', '"John.Doe+x@example.org"', "Yes"]
    assert fields[3].endswith(" +0000 UTC")
    assert fields[4:] == ['"johndoe@example.org"', '"added through mox cli"']
    look = await running.ctl("queue", "suppress", "lookup", "johndoe@example.org")
    assert look.output.startswith("present\nadded: ") and look.output.endswith(
        'manual: yes\nbase address: johndoe@example.org\nreason: "added through mox cli"\n'
    )
    assert await running.ctl("queue", "suppress", "add", "nobody", "a@example.org") == CtlResult(
        'looking up account: unknown account "nobody"\n', 1
    )
    assert await running.ctl(
        "queue", "suppress", "remove", "mox", "j.o.h.n.doe@example.org"
    ) == CtlResult("", 0)
    assert await running.ctl(
        "queue", "suppress", "remove", "mox", "johndoe@example.org"
    ) == CtlResult("removing suppression: absent\n", 1)
    assert await running.ctl("queue", "suppress", "lookup", "johndoe@example.org") == CtlResult(
        "not present\n", 0
    )


async def test_permerror_suppresses_then_suppressed_send(running: Running) -> None:
    rcpt = "userpermerror@example.org"
    await running.queue_send(rcpt)
    [ev] = await running.wait_events(1)
    assert (ev.event, ev.smtp_code, ev.smtp_enhanced_code, ev.suppressing) == (
        "failed",
        550,
        "5.0.0",
        True,
    )
    out = await running.ctl("queue", "suppress", "list")
    [line] = out.output[len(HEADER) :].splitlines()
    fields = line.split("\t")
    assert fields[:3] == ['"mox"', f'"{rcpt}"', "No"]
    assert fields[4:] == [
        f'"{rcpt}"',
        '"delivery failure from queue with smtp code 550, enhanced code \\"0.0\\""',
    ]
    # Submission does not check the list; the queue fails it at once.
    await running.queue_send(rcpt)
    events = await running.wait_events(2)
    ev2 = events[1]
    assert (ev2.event, ev2.smtp_code, ev2.smtp_enhanced_code, ev2.suppressing) == (
        "suppressed",
        0,
        "",
        False,
    )
    assert ev2.error == (
        f"not delivering to recipient address {rcpt}: address is on suppression list, permanent"
    )
    store = running.server.ctx.store  # type: ignore[union-attr]

    def read(conn: sqlite3.Connection) -> Any:
        return conn.execute(
            "SELECT success, attempts FROM retired WHERE id = ?", (ev2.queue_msg_id,)
        ).fetchone()

    assert tuple(await store.read(read)) == (0, 1)
    # Two failure DSNs in the sender's Inbox (one per message).

    def dsns(conn: sqlite3.Connection) -> int:
        return conn.execute(
            "SELECT COUNT(*) FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
            " WHERE m.account = 'mox' AND b.name = 'Inbox' AND m.is_dsn = 1"
        ).fetchone()[0]

    with trio.fail_after(10):
        while True:
            if await store.read(dsns) >= 2:
                break
            await trio.sleep(0.05)
