"""kill -9 mid-delivery, restart: nothing lost, nothing retired is sent again.

At-least-once boundary: a message whose SMTP transaction completed at the
sink but whose outcome was not yet committed when the process died is
delivered again after restart (its claim had set NextAttempt, so the
restarted queue retries it after the backoff; the child's clock is shifted
an hour to make that immediate). A message whose delivery was recorded
(retired) is never sent again.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from core.store.settings import DatabaseSettings
from tests.queue.conftest import write_config
from tests.support.backend import write_store_settings
from tests.support.dnsresponder import DNSResponder
from tests.support.smtpsink import smtp_sink

ROOT = Path(__file__).resolve().parents[2]
N = 150


def child(
    conf: Path, dns_port: int, smtp_port: int, mode: str, *rest: str
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.queue._queue_child",
            str(conf),
            str(dns_port),
            str(smtp_port),
            mode,
            *rest,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )


def db_state(db: Path, database: DatabaseSettings | None) -> tuple[int, set[str]]:
    """(entries queued, recipients retired as delivered), read outside the server."""
    conn: Any
    if database is not None:
        import psycopg

        conn = psycopg.connect(database.resolved_url(), autocommit=True)
    else:
        conn = sqlite3.connect(db)
    try:
        queued = conn.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        retired = {
            r[0] for r in conn.execute("SELECT recipient_address FROM retired WHERE success = 1")
        }
    finally:
        conn.close()
    return queued, retired


@pytest.mark.slow
def test_kill9_mid_delivery(tmp_path: Path, default_db_backend: DatabaseSettings | None) -> None:
    conf = write_config(tmp_path / "config")
    write_store_settings(tmp_path / "config", default_db_backend)
    db = tmp_path / "config" / "data" / "moxtrio.db"
    records = {
        "example.org": {"MX": ["10 mx.example.org."]},
        "mx.example.org": {"A": ["127.0.0.1"]},
    }
    with DNSResponder(records) as dns, smtp_sink(tmp_path / "sink") as sink:
        p1 = child(conf, dns.port, sink.port, "add", str(N))
        try:
            deadline = time.monotonic() + 30
            while len(sink.messages()) < 20:
                assert time.monotonic() < deadline, "deliveries did not start"
                assert p1.poll() is None
                time.sleep(0.01)
            os.kill(p1.pid, signal.SIGKILL)
            p1.wait(timeout=10)
        finally:
            if p1.poll() is None:
                p1.kill()
                p1.wait()
        queued_at_kill, retired_at_kill = db_state(db, default_db_backend)
        sent_at_kill = len(sink.messages())
        assert retired_at_kill, "nothing recorded before the kill"
        assert queued_at_kill > 0, "everything was delivered before the kill; nothing tested"

        p2 = child(conf, dns.port, sink.port, "run", "0", "3600")
        try:
            deadline = time.monotonic() + 60
            while True:
                queued, retired = db_state(db, default_db_backend)
                if queued == 0:
                    break
                assert time.monotonic() < deadline, f"{queued} still queued after restart"
                assert p2.poll() is None
                time.sleep(0.05)
        finally:
            p2.send_signal(signal.SIGTERM)
            try:
                p2.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p2.kill()
                p2.wait()
        counts = collections.Counter(r for m in sink.messages() for r in m.rcpt_tos)
        everyone = {f"r{i}@example.org" for i in range(N)}
        assert set(counts) == everyone  # nothing lost
        assert retired == everyone
        for r in retired_at_kill:
            assert counts[r] == 1, f"{r} was retired before the kill but sent {counts[r]} times"
        dups = {r: c for r, c in counts.items() if c > 1}
        # Only deliveries in flight at the kill can repeat.
        assert len(dups) <= sent_at_kill - len(retired_at_kill) + 32
        print(
            f"killed with {len(retired_at_kill)} retired, {queued_at_kill} queued; duplicates: {len(dups)}"
        )
