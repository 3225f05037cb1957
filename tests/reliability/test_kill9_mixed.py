"""kill -9 under mixed load, several times, then drain (localserve child).

webapi Sends and SMTP submissions run at once; the server is killed with
SIGKILL at random moments and restarted on the same directory. After a
final drain: every acknowledged message is delivered exactly once, no
message is delivered twice, and every delivery has exactly one webhook id
(a webhook resent with the same id after a crash is counted and bounded).
"""

from __future__ import annotations

import random
import signal
import smtplib
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import httpx
import pytest
import trio

from tests.reliability.helpers import AUTH, read_db, smtp_submit, webapi_send, webhook_localserve
from tests.support.procs import running
from tests.webhooks.helpers import receiver

pytestmark = pytest.mark.slow

KILLS = 3
SENDERS = 2  # of each kind
PER_SENDER = 400  # upper bound per sender per round; the kill ends it sooner
WEBHOOK_CONCURRENCY = 10  # the plugin's default MaxConcurrent


class Load:
    """Client threads that record what the server acknowledged."""

    def __init__(self, ip: str, round_no: int) -> None:
        self.ip = ip
        self.round = round_no
        self.acked: list[str] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [
            threading.Thread(target=self._webapi, args=(n,)) for n in range(SENDERS)
        ] + [threading.Thread(target=self._smtp, args=(n,)) for n in range(SENDERS)]

    def _ack(self, subject: str) -> None:
        with self.lock:
            self.acked.append(subject)

    def _webapi(self, n: int) -> None:
        try:
            with httpx.Client(timeout=10) as http:
                for i in range(PER_SENDER):
                    if self.stop.is_set():
                        return
                    subject = f"w{self.round}-{n}-{i}"
                    if webapi_send(http, self.ip, f"w{n}@example.org", subject).status_code == 200:
                        self._ack(subject)
        except httpx.HTTPError:
            return  # the kill cut the connection

    def _smtp(self, n: int) -> None:
        try:
            with smtplib.SMTP(self.ip, 1587, timeout=10) as s:
                s.login(*AUTH)
                for i in range(PER_SENDER):
                    if self.stop.is_set():
                        return
                    subject = f"s{self.round}-{n}-{i}"
                    smtp_submit(s, f"s{n}@example.org", subject)
                    self._ack(subject)
        except (smtplib.SMTPException, OSError):
            return

    def start(self) -> None:
        for t in self.threads:
            t.start()

    def wait_acked(self, n: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < n and time.monotonic() < deadline:
            time.sleep(0.01)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=20)


async def test_kill9_under_mixed_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    rng = random.Random(20261204)
    acked: list[str] = []
    async with receiver() as rec:
        directory, ip = webhook_localserve(tmp_path, rec.url("/out"))
        args = ["localserve", "-dir", str(directory)]
        for round_no in range(KILLS):
            with running(args, directory, ip) as server:
                load = Load(ip, round_no)
                load.start()
                # A random moment once the load is going: some acknowledged,
                # some in flight, deliveries and webhooks under way.
                await trio.to_thread.run_sync(load.wait_acked, 10 + rng.randrange(40), 20.0)
                await trio.sleep(rng.uniform(0.0, 0.5))
                server.proc.send_signal(signal.SIGKILL)
                await trio.to_thread.run_sync(lambda s=server: s.proc.wait(timeout=10))
                await trio.to_thread.run_sync(load.join)
                acked += load.acked

        assert len(acked) >= 50, "the load did not get going"
        # Restart and drain: queue empty and every webhook delivered.
        with running(args, directory, ip) as server:
            deadline = trio.current_time() + 40
            while True:
                state = read_db(directory)
                pending = len([e for e in state.outgoing_events if e[1]]) - len(
                    {r.header("X-Mox-Webhook-ID") for r in rec.for_path("/out")}
                )
                if state.queued == 0 and pending <= 0 and _hooks_queued(directory) == 0:
                    break
                assert trio.current_time() < deadline, (
                    f"not drained: {state.queued} queued, {_hooks_queued(directory)} webhooks queued"
                )
                await trio.sleep(0.2)
            server.proc.send_signal(signal.SIGTERM)
            await trio.to_thread.run_sync(lambda: server.proc.wait(timeout=20))

    state = read_db(directory)
    twice = {s: n for s, n in state.delivered_ids.items() if n > 1}
    assert not twice, f"{len(twice)} messages delivered twice, e.g. {list(twice.items())[:3]}"
    lost = [s for s in acked if state.delivered_ids[s] != 1]
    assert not lost, f"{len(lost)} acknowledged messages not delivered, e.g. {lost[:3]}"

    # Webhooks: per delivered message exactly one webhook id; resends of an
    # id (a crash between sending and recording) are counted and bounded.
    ids_by_subject: dict[str, set[str]] = defaultdict(set)
    sends = Counter[str]()
    for r in rec.for_path("/out"):
        hook_id = r.header("X-Mox-Webhook-ID") or ""
        sends[hook_id] += 1
        if len(r.body) != int(r.header("Content-Length") or 0):
            continue  # the kill cut this request short: not a delivery
        payload = r.json()
        if payload["Event"] == "delivered":
            ids_by_subject[payload["Subject"]].add(hook_id)
    delivered_subjects = set(state.delivered_ids)
    assert set(ids_by_subject) == delivered_subjects
    multi = {s: ids for s, ids in ids_by_subject.items() if len(ids) != 1}
    assert not multi, f"deliveries with several webhook ids: {list(multi.items())[:3]}"
    resent = sum(n - 1 for n in sends.values())
    assert resent <= KILLS * WEBHOOK_CONCURRENCY, f"{resent} webhook resends"
    assert len(state.events("delivered")) == len(delivered_subjects)
    print(f"acked {len(acked)}, delivered {len(delivered_subjects)}, webhook resends {resent}")


def _hooks_queued(directory: Path) -> int:
    import sqlite3

    db = sqlite3.connect(directory / "moxtrio.db")
    try:
        return int(db.execute("SELECT COUNT(*) FROM webhook_queue").fetchone()[0])
    finally:
        db.close()
