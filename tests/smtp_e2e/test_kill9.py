"""A server killed with SIGKILL under load loses nothing it acknowledged.

A child `moxtrio localserve` receives messages over SMTP from several
connections; the test records each message that got 250, kills the server
with SIGKILL at an arbitrary moment, and checks the store: every
acknowledged message has its row and its complete file.
"""

from __future__ import annotations

import signal
import smtplib
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from tests.support.procs import localserve, running

pytestmark = pytest.mark.slow

BODY = b"x" * 2000 + b"\r\n"


def test_kill9_during_smtp_load_keeps_every_acknowledged_message(tmp_path: Path) -> None:
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    with localserve(tmp_path) as server:
        ip = server.ip

        def client(n: int) -> None:
            i = 0
            try:
                with smtplib.SMTP(ip, 1025, timeout=10) as s:
                    while not stop.is_set() and i < 2000:
                        mid = f"<k9-{n}-{i}@test>"
                        data = (
                            f"From: a@localhost\r\nMessage-Id: {mid}\r\nSubject: k{i}\r\n\r\n".encode() + BODY
                        )
                        s.sendmail("a@localhost", ["mox@localhost"], data)
                        with lock:
                            acked.append(mid)
                        i += 1
            except (smtplib.SMTPException, OSError):
                return  # the kill cut the connection

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with lock:
                if len(acked) >= 200:
                    break
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait(timeout=10)
        stop.set()
        for t in threads:
            t.join(timeout=15)

    assert len(acked) >= 50, "the load did not get going"
    # Restart on the same directory: start-up recovery (orphan files removed,
    # WAL replayed) must keep every acknowledged message.
    with running(["localserve", "-dir", str(server.directory)], server.directory, server.ip) as again:
        assert "message file missing" not in again.output()
    db = sqlite3.connect(server.directory / "moxtrio.db")
    rows = dict(db.execute("select message_id, file_id from messages").fetchall())
    sizes = {mid: size for mid, size in db.execute("select message_id, size - length(msg_prefix) from messages")}
    assert db.execute("pragma integrity_check").fetchone()[0] == "ok"
    missing = [m for m in acked if m not in rows]
    assert not missing, f"{len(missing)} acknowledged messages lost, e.g. {missing[:3]}"
    for mid in acked:
        path = server.directory / "msg" / rows[mid]
        assert path.stat().st_size == sizes[mid], f"file of {mid} is incomplete"
        assert path.read_bytes().endswith(BODY)
