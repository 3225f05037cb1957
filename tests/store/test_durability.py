"""kill -9 durability: every id a writer saw returned from store.write survives."""

from __future__ import annotations

import os
import select
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

CHILD = Path(__file__).with_name("_durability_child.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path)],
        stdout=subprocess.PIPE,
        env=env,
        cwd=REPO,
    )
    assert proc.stdout is not None
    fd = proc.stdout.fileno()
    printed: list[int] = []
    buf = b""
    deadline = time.monotonic() + 20
    target = 1500
    try:
        while len(printed) < target and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if not ready:
                continue
            data = os.read(fd, 65536)
            if not data:
                break
            buf += data
            *lines, buf = buf.split(b"\n")  # a partial last line is not an ack
            printed.extend(int(ln) for ln in lines if ln and ln != b"ready")
        # Kill mid-stream: writes are in flight in the writer thread.
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    assert len(printed) >= 100, f"child printed only {len(printed)} ids"

    conn = sqlite3.connect(tmp_path / "moxtrio.db")
    try:
        present = {r[0] for r in conn.execute("SELECT id FROM outgoing")}
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        conn.close()
    lost = [i for i in printed if i not in present]
    assert lost == [], f"{len(lost)} acknowledged ids lost, e.g. {lost[:5]}"
    assert len(present) >= len(set(printed))


def test_store_reopens_after_sigkill_and_keeps_writing(tmp_path: Path) -> None:
    """After a crash the database opens (WAL recovered) and takes new writes."""
    import trio

    from core.store import Store

    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp_path)], stdout=subprocess.PIPE, env=env, cwd=REPO
    )
    assert proc.stdout is not None
    try:
        seen = 0
        deadline = time.monotonic() + 20
        while seen < 50 and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen += line != b"ready\n"
    finally:
        proc.kill()
        proc.wait(10)
    assert seen >= 50

    async def reopen() -> tuple[int, int | None]:
        async with await Store.open(tmp_path) as store:
            before = await store.read(
                lambda c: c.execute("SELECT COUNT(*) FROM outgoing").fetchone()[0]
            )
            new_id = await store.write(
                lambda c: (
                    c.execute(
                        "INSERT INTO outgoing (account, recipient, submitted) VALUES ('a', 'b', 0)"
                    ).lastrowid
                )
            )
            return before, new_id

    before, new_id = trio.run(reopen)
    assert before >= 50
    assert new_id is not None and new_id > before
