"""Outcomes without an SMTP conversation: precheck verdicts, Fail transport,
disabled sender domain, unknown transport, DNS errors; retired history."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core.message.dsn import parse_dsn
from tests.queue.conftest import START


async def test_precheck_settles_without_connecting(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory() as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        rcpt = "blocked@example.org"
        h.recorder.precheck_suppressed.add(rcpt)
        es = await h.add([rcpt, "ok@example.org"])
        await h.wait_for(lambda: len(h.recorder.events) == 2)
        assert h.recorder.events_for(rcpt) == ["suppressed"]
        assert h.recorder.events_for("ok@example.org") == ["delivered"]
        ev = next(e for e in h.recorder.events if e.recipient == rcpt)
        assert ev.smtp_code == 0 and not ev.suppressing
        assert ev.error.endswith("address is on suppression list, permanent")
        # Both recipients of the batch were prechecked (docs/differences.md, item 8);
        # no suppress decision for a suppressed recipient.
        prechecks = [c[1] for c in h.recorder.calls if c[0] == "precheck"]
        assert sorted(prechecks) == [rcpt, "ok@example.org"]
        assert not [c for c in h.recorder.calls if c[0] == "suppress"]
        [m] = sink.messages()
        assert m.rcpt_tos == ["ok@example.org"]
        r = await h.retired(es[0].id)
        assert not r.success and r.attempts == 1 and r.last_attempt == START
        inbox = await h.inbox()
        assert len(inbox) == 1
        d = parse_dsn(await h.ctx.store.files.read(inbox[0].file_id))
        assert d is not None and d.recipients[0].address == rcpt


async def test_fail_transport(harness_factory: Any) -> None:
    h = await harness_factory()
    [e] = await h.add(["x@example.org"], transport="failer")
    await h.wait_for(lambda: h.recorder.events_for("x@example.org") == ["failed"])
    ev = h.recorder.events[-1]
    assert (ev.smtp_code, ev.smtp_enhanced_code) == (552, "5.7.0")
    assert "no way" in ev.error
    assert ("suppress", ("x@example.org", 552)) in h.recorder.calls
    assert h.dns.queries == []  # failed without any lookup
    [e2] = await h.add(["y@example.org"], transport="soft")
    await h.wait_for(lambda: h.recorder.events_for("y@example.org") == ["delayed"])
    assert h.recorder.events[-1].smtp_code == 451


async def test_disabled_domain_and_unknown_transport(harness_factory: Any) -> None:
    h = await harness_factory()
    await h.add(["x@example.org"], sender="dis@disabled.example", account="dis")
    await h.add(["y@example.org"], transport="nosuch")
    await h.add(["z@example.org"], transport="smarthost")
    await h.wait_for(lambda: len(h.recorder.events) == 3)
    errs = {e.recipient: (e.event, e.error) for e in h.recorder.events}
    assert errs["x@example.org"] == ("delayed", "domain of sender temporarily disabled")
    assert errs["y@example.org"] == ("delayed", 'cannot find transport "nosuch"')
    assert errs["z@example.org"][0] == "delayed" and "not supported" in errs["z@example.org"][1]


async def test_nxdomain_fails_permanently(harness_factory: Any) -> None:
    h = await harness_factory()
    [e] = await h.add(["x@nonexistent.example"])
    await h.wait_for(lambda: h.recorder.events_for("x@nonexistent.example") == ["failed"])
    ev = h.recorder.events[-1]
    assert ev.error == "recipient domain nonexistent.example does not exist"
    assert ev.smtp_code == 0
    # No SMTP code: the suppression decision is not asked.
    assert not [c for c in h.recorder.calls if c[0] == "suppress"]


async def test_retired_keep_and_cleanup(harness_factory: Any) -> None:
    h = await harness_factory()
    [keep] = await h.add(["a@example.org"], transport="failer")
    [gone] = await h.add(
        ["b@example.org"], transport="failer", sender="nokeep@mail.example", account="nokeep"
    )
    await h.wait_for(lambda: len(h.recorder.events) == 2)
    r = await h.retired(keep.id)
    assert r.keep_until == START + timedelta(hours=72) and r.recipient_address == "a@example.org"
    from core.store.queue_rows import QueueEntryNotFound

    try:
        await h.retired(gone.id)
        raise AssertionError("retired record kept with period 0")
    except QueueEntryNotFound:
        pass
    assert await h.queue.cleanup_retired() == 0
    h.clock.advance(timedelta(hours=72, seconds=1))
    assert await h.queue.cleanup_retired() == 1
    assert await h.queue.retired_list() == []


async def test_hold_by_hook_then_unhold(harness_factory: Any, sink_factory: Any) -> None:
    from core.queue.admin import QueueFilter

    async with sink_factory() as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        h.recorder.hold_all = True
        [e] = await h.add(["held@example.org"])
        assert e.hold
        assert await h.nothing_started()
        assert h.recorder.events == [] and sink.messages() == []
        assert await h.queue.unhold(QueueFilter(To="held@")) == 1
        await h.wait_for(lambda: h.recorder.events_for("held@example.org") == ["delivered"])
