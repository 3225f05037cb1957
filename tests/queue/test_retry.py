"""Temporary failures, the backoff schedule on a fake clock, delayed/failed DSNs."""

from __future__ import annotations

import socket
import ssl
from datetime import timedelta
from typing import Any

from core.message.dsn import parse_dsn
from core.queue.backoff import backoff
from tests.queue.conftest import START


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


def test_backoff_formula() -> None:
    import random

    rng = random.Random(1)
    for n in range(8):
        for _ in range(50):
            d = backoff(n, rng).total_seconds()
            assert (450 - 5) * 2**n <= d <= (450 + 4) * 2**n


async def test_4xx_then_success(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory(rcpt_replies={"later@example.org": "451 4.3.0 try later"}) as sink1:
        h = await harness_factory(sink1.port)
        h.point_domain("example.org")
        [e] = await h.add(["later@example.org"])
        await h.wait_for(lambda: h.recorder.events_for("later@example.org") == ["delayed"])
        ev = h.recorder.events[-1]
        assert (ev.smtp_code, ev.smtp_enhanced_code) == (451, "4.3.0")
        assert "451 4.3.0 try later" in ev.error
        q = await h.queued(e.id)
        assert q.attempts == 1 and q.last_attempt == START
        assert timedelta(seconds=445) <= q.next_attempt - START <= timedelta(seconds=454)
        assert q.results[-1].code == 451 and q.results[-1].secode == "3.0"
        assert sink1.messages() == []
    async with sink_factory() as sink2:
        h.queue.settings.delivery.smtp_port = sink2.port
        # Not due yet: nothing happens after a moment.
        h.clock.advance(timedelta(seconds=400))
        assert await h.nothing_started()
        assert h.recorder.events_for("later@example.org") == ["delayed"]
        h.clock.set(q.next_attempt)
        await h.wait_for(
            lambda: h.recorder.events_for("later@example.org") == ["delayed", "delivered"]
        )
        assert len(sink2.messages()) == 1
        r = await h.retired(e.id)
        assert r.attempts == 2 and r.success
        assert [x.success for x in r.results] == [False, True]
        assert r.results[0].error.startswith("delivering message to 127.0.0.1:")


async def test_connection_refused_is_delayed(harness_factory: Any) -> None:
    h = await harness_factory(free_port())
    h.point_domain("example.org")
    [e] = await h.add(["x@example.org"])
    await h.wait_for(lambda: h.recorder.events_for("x@example.org") == ["delayed"])
    ev = h.recorder.events[-1]
    assert ev.smtp_code == 0 and ev.smtp_enhanced_code == ""
    assert "connection refused" in ev.error
    q = await h.queued(e.id)
    assert q.dialed_ips == {"mx.example.org": ["127.0.0.1"]}


async def test_full_backoff_schedule(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory(rcpt_replies={"temp@example.org": "451 4.3.0 temp"}) as sink:
        h = await harness_factory(sink.port)
        h.point_domain("example.org")
        [e] = await h.add(["temp@example.org"])
        rcpt = "temp@example.org"
        nominal = START
        for attempt in range(1, 9):
            await h.wait_for(lambda n=attempt: len(h.recorder.events_for(rcpt)) == n)
            inbox = await h.inbox()
            if attempt < 8:
                q = await h.queued(e.id)
                assert q.attempts == attempt
                assert h.recorder.events_for(rcpt)[-1] == "delayed"
                prev = attempt - 1
                d = q.next_attempt - q.last_attempt
                assert timedelta(seconds=445 * 2**prev) <= d <= timedelta(seconds=454 * 2**prev)
                # Nominal schedule: 0, 7m30s, 22m30s, 52m30s, 1h52m30s, ... (±jitter)
                assert abs((q.last_attempt - START) - (nominal - START)) <= timedelta(
                    seconds=5 * 2**attempt
                )
                nominal += timedelta(seconds=450 * 2**prev)
                # The delayed DSN comes exactly after attempt 5.
                assert len(inbox) == (1 if attempt >= 5 else 0)
                h.clock.set(q.next_attempt)
        assert h.recorder.events_for(rcpt)[-1] == "failed"
        ev = h.recorder.events[-1]
        assert (ev.smtp_code, ev.smtp_enhanced_code) == (451, "4.3.0")
        r = await h.retired(e.id)
        assert r.attempts == 8 and not r.success and len(r.results) == 8
        inbox = await h.inbox()
        assert len(inbox) == 2
        kinds = []
        for m in inbox:
            d = parse_dsn(await h.ctx.store.files.read(m.file_id))
            assert d is not None
            kinds.append((m.subject, d.recipients[0].action, d.recipients[0].status))
        assert kinds == [
            ("mail delivery delayed", "delayed", "4.3.0"),
            ("mail delivery failed", "failed", "5.3.0"),
        ]
        d0 = parse_dsn(await h.ctx.store.files.read(inbox[0].file_id))
        assert d0 is not None and d0.recipients[0].will_retry_until is not None
        assert sink.messages() == []
        assert h.queue.delivered_batches == 8


async def test_starttls_and_requiretls(harness_factory: Any, sink_factory: Any) -> None:
    async with sink_factory(starttls=True, requiretls=True) as sink:
        ctxssl = ssl.create_default_context(cafile=sink.config.certfile)
        h = await harness_factory(sink.port, ssl_context=ctxssl)
        h.point_domain("example.org", mx="localhost")
        await h.add(["plain@example.org"])
        await h.add(["strict@example.org"], require_tls=True)
        await h.wait_for(lambda: len(h.recorder.events) == 2)
        assert {e.event for e in h.recorder.events} == {"delivered"}
        msgs = {m.rcpt_tos[0]: m for m in sink.messages()}
        assert msgs["plain@example.org"].tls and not msgs["plain@example.org"].requiretls
        assert msgs["strict@example.org"].tls and msgs["strict@example.org"].requiretls


async def test_requiretls_unsupported_fails_permanently(
    harness_factory: Any, sink_factory: Any
) -> None:
    async with sink_factory(starttls=True) as sink:
        ctxssl = ssl.create_default_context(cafile=sink.config.certfile)
        h = await harness_factory(sink.port, ssl_context=ctxssl)
        h.point_domain("example.org", mx="localhost")
        [e] = await h.add(["strict@example.org"], require_tls=True)
        await h.wait_for(lambda: h.recorder.events_for("strict@example.org") == ["failed"])
        ev = h.recorder.events[-1]
        assert (ev.smtp_code, ev.smtp_enhanced_code) == (554, "5.7.30")
        assert sink.messages() == []
