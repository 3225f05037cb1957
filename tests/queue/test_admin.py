"""Admin operations through the ctl command handlers, with mox's output texts."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from core.plugin_api import CtlRequest
from core.queue.admin import QueueFilter, QueueSort
from core.queue.timefmt import format_go_duration, parse_go_duration
from core.sqlfilter import FilterError
from tests.queue.conftest import START


async def ctl(h: Any, *argv: str) -> tuple[str, int]:
    cmds = {c.path: c for c in h.queue.ctl_commands()}
    for n in (3, 2):
        if tuple(argv[:n]) in cmds:
            res = await cmds[tuple(argv[:n])].handler(h.ctx, CtlRequest(list(argv[n:])))
            return res.output, res.exit_code
    raise KeyError(argv)


def test_go_durations() -> None:
    assert parse_go_duration("1h30m") == timedelta(minutes=90)
    assert parse_go_duration("-2h") == timedelta(hours=-2)
    assert parse_go_duration("0") == timedelta(0)
    assert format_go_duration(timedelta(minutes=14, seconds=27)) == "14m27s"
    assert format_go_duration(timedelta(hours=1, seconds=6)) == "1h0m6s"
    assert format_go_duration(timedelta(seconds=-2)) == "-2s"
    assert format_go_duration(timedelta(0)) == "0s"


async def test_ctl_commands(harness_factory: Any) -> None:
    h = await harness_factory(start=False)
    a = await h.add(["one@example.org"])
    b = await h.add(["two@other.example"], extra={"k": "v"})
    c = await h.add(["three@other.example"], sender="nokeep@mail.example", account="nokeep")
    ids = [a[0].id, b[0].id, c[0].id]

    out, code = await ctl(h, "queue", "hold", "-to", "@other.example")
    assert (out, code) == ("2 messages changed\n", 0)
    assert [e.id for e in await h.queue.list(QueueFilter(Hold=True), QueueSort(Asc=True))] == ids[
        1:
    ]
    out, _ = await ctl(h, "queue", "unhold", "-ids", str(ids[2]))
    assert out == "1 messages changed\n"

    out, _ = await ctl(h, "queue", "schedule", "-account", "mjl", "90m")
    assert out == "2 message(s) rescheduled\n"
    e = await h.queued(ids[0])
    assert e.next_attempt == START + timedelta(minutes=90)
    out, _ = await ctl(h, "queue", "schedule", "-ids", str(ids[0]), "-now", "0")
    assert out == "1 message(s) rescheduled\n"
    assert (await h.queued(ids[0])).next_attempt == START

    h.clock.advance(timedelta(seconds=25))
    out, _ = await ctl(h, "queue", "list", "-asc")
    lines = out.splitlines()
    assert lines[0] == "messages:"
    assert lines[1] == (
        f'{ids[0]:5d} 2026-11-24T00:00:00Z from:mjl@mail.example to:one@example.org next -25s last  error ""'
    )
    assert len(lines) == 4
    out, _ = await ctl(h, "queue", "list", "-hold", "true", "-from", "nobody")
    assert out == "messages:\n(none)\n"
    out, code = await ctl(h, "queue", "list", "-nextattempt", "x1h")
    assert code == 1 and 'must start with "<" for before or ">" for after a duration' in out
    out, code = await ctl(h, "queue", "list", "-bogus")
    assert code == 2 and "flag provided but not defined: -bogus" in out

    out, _ = await ctl(h, "queue", "transport", "-ids", str(ids[0]), "failer")
    assert out == "1 message(s) changed\n"
    assert (await h.queued(ids[0])).transport == "failer"
    out, _ = await ctl(h, "queue", "requiretls", "-ids", str(ids[0]), "yes")
    assert out == "1 message(s) changed\n"
    assert (await h.queued(ids[0])).require_tls is True
    out, _ = await ctl(h, "queue", "requiretls", "-ids", str(ids[0]), "default")
    assert (await h.queued(ids[0])).require_tls is None

    out, _ = await ctl(h, "queue", "dump", str(ids[0]))
    assert out.startswith("Received: from test by mail.example") and "hello" in out

    out, _ = await ctl(h, "queue", "fail", "-ids", str(ids[0]))
    assert out == "1 message(s) marked as failed\n"
    out, _ = await ctl(h, "queue", "drop", "-to", "@other.example")
    assert out == "2 message(s) dropped\n"
    assert await h.queue.count() == 0
    evs = [(e.recipient, e.event, e.error, e.smtp_code) for e in h.recorder.events]
    assert evs == [
        ("one@example.org", "failed", "delivery canceled by admin", 0),
        ("two@other.example", "canceled", "delivery canceled by admin", 0),
        ("three@other.example", "canceled", "delivery canceled by admin", 0),
    ]
    assert h.recorder.events[1].extra == {"k": "v"} and h.recorder.events[0].extra == {}
    # fail sends a DSN, drop does not.
    inbox = await h.inbox()
    assert len(inbox) == 1 and inbox[0].subject == "mail delivery failed"
    raw = await h.ctx.store.files.read(inbox[0].file_id)
    assert b"delivery canceled by admin" in raw

    out, _ = await ctl(h, "queue", "retired", "list", "-asc", "-sort", "queued")
    lines = out.splitlines()
    assert lines[0] == "retired messages:"
    assert lines[1] == (
        f'{ids[0]:5d} 2026-11-24T00:00:00Z failure from:mjl@mail.example to:one@example.org last 0s error "delivery canceled by admin"'
    )
    assert len(lines) == 3  # nokeep's message is not kept
    out, _ = await ctl(h, "queue", "retired", "list", "-result", "success")
    assert out == "retired messages:\n(none)\n"
    out, _ = await ctl(h, "queue", "retired", "print", str(ids[1]))
    assert out.startswith('{\n\t"ID": ')
    d = json.loads(out)
    assert list(d)[:4] == ["ID", "BaseID", "Queued", "SenderAccount"]
    assert d["RecipientDomain"] == {"IP": "", "Domain": {"ASCII": "other.example", "Unicode": ""}}
    assert d["Extra"] == {"k": "v"} and d["Success"] is False
    assert d["KeepUntil"] == "2026-11-27T00:00:25Z"
    assert d["Results"][-1]["Error"] == "delivery canceled by admin"
    out, code = await ctl(h, "queue", "retired", "print", "9999")
    assert code == 1


async def test_filter_errors_and_sort(harness_factory: Any) -> None:
    h = await harness_factory(start=False)
    with pytest.raises(FilterError, match='unknown sort order field "Bogus"'):
        await h.queue.list(QueueFilter(), QueueSort(Field="Bogus"))
    es = [(await h.add([f"r{i}@example.org"]))[0] for i in range(5)]
    await h.queue.next_attempt_add(QueueFilter(IDs=[es[0].id]), timedelta(hours=1))
    got = await h.queue.list(QueueFilter(), QueueSort())
    assert got[0].id == es[0].id  # descending NextAttempt
    page = await h.queue.list(QueueFilter(Max=2), QueueSort(Asc=True))
    assert [e.id for e in page] == [es[1].id, es[2].id]
    nxt = await h.queue.list(
        QueueFilter(Max=2), QueueSort(Asc=True, LastID=page[-1].id, Last="2026-11-24T00:00:00Z")
    )
    assert [e.id for e in nxt] == [es[3].id, es[4].id]
    assert len(await h.queue.list(QueueFilter(NextAttempt=">30m"))) == 1
    assert len(await h.queue.list(QueueFilter(Submitted="<now", From="mjl@"))) == 0
    assert len(await h.queue.list(QueueFilter(From="nomatch", To="r3@"))) == 1
