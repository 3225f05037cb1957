"""SIGTERM while the queue is delivering (localserve, as a child process).

The queue starts after the SMTP listener it delivers to and stops before
it: deliveries in flight at SIGTERM finish or are released (attempt undone),
none is left "delivering...", none meets a closed listener and turns into a
``delayed`` webhook, and nothing is lost or delivered twice.
"""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest
import trio

from tests.reliability.helpers import read_db, webapi_send, webhook_localserve
from tests.support.procs import running
from tests.webhooks.helpers import receiver

pytestmark = pytest.mark.slow

NORMAL = 40
STALLING = 3


async def test_sigterm_during_deliveries_settles_every_attempt(tmp_path: Path) -> None:
    async with receiver() as rec:
        directory, ip = webhook_localserve(tmp_path, rec.url("/out"))
        sent: list[str] = []
        with running(["localserve", "-dir", str(directory)], directory, ip) as server:

            def send_all() -> None:
                with httpx.Client(timeout=20) as http:
                    # "timeout" recipients stall at DATA: certainly in flight at
                    # SIGTERM (each its own domain: they hold a domain's slots).
                    for i in range(STALLING):
                        r = webapi_send(http, ip, f"s{i}timeout@stall{i}.example", f"stall{i}@test")
                        assert r.status_code == 200, r.text
                    # One message, two recipients: two concurrent transactions,
                    # one delivered at once, one stalling until the stop.
                    r = webapi_send(http, ip, ["pair@pair.example", "pairtimeout@pair.example"], "pair@test")
                    assert r.status_code == 200, r.text
                    for i in range(NORMAL):
                        r = webapi_send(http, ip, f"user{i}@example.org", f"m{i}@test")
                        assert r.status_code == 200, r.text
                        sent.append(f"m{i}@test")

            await trio.to_thread.run_sync(send_all)
            # Some deliveries done, others still going.
            await rec.wait(1, "/out", timeout=20)
            server.proc.send_signal(signal.SIGTERM)
            code = await trio.to_thread.run_sync(lambda: server.proc.wait(timeout=30))
            assert code == 0, server.output()

        state = read_db(directory)
        assert state.unsettled == [], "entries left delivering after SIGTERM"
        assert state.events("delayed") == [], f"delayed events after a clean stop: {state.events('delayed')}"
        assert not [r for r in rec.for_path("/out") if r.json().get("Event") == "delayed"]
        # The stalled attempts were released, not counted; the delivered half
        # of the pair was recorded as delivered.
        assert state.queued >= STALLING + 1
        assert state.delivered_ids["pair@test"] == 1
        assert state.events("delayed") == []
        for m in sent:
            assert state.delivered_ids[m] <= 1, f"{m} delivered twice"
        delivered = [m for m in sent if state.delivered_ids[m] == 1]
        assert len(delivered) + state.queued - STALLING - 1 == NORMAL, "a message got lost"
        assert len(state.events("delivered")) == len(delivered) + 1
        assert "interrupted deliveries settled at shutdown" in server.output()
