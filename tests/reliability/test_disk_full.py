"""A full disk (the data directory on a small tmpfs the test mounts).

While the disk is full: webapi Send answers an error (not 200), SMTP DATA
answers 4xx, the server keeps running; deliveries in flight when the disk
filled are never repeated. When space is freed it recovers: new mail is
accepted and everything acknowledged is delivered exactly once.
"""

from __future__ import annotations

import errno
import os
import shutil
import smtplib
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from plugins.localserve.init import write_localserve_config
from tests.reliability.helpers import AUTH, read_db, smtp_submit, webapi_send
from tests.support.procs import run_cli, running, unique_loopback_ip

pytestmark = pytest.mark.slow

SIZE = "16m"


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    mnt = tmp_path / "fs"
    mnt.mkdir()
    # The only skips of the suite, and only where the filesystem to fill cannot
    # be made at all (no mount command, or not root / no CAP_SYS_ADMIN, as for a
    # developer's unprivileged run). They never hide a failure of the server:
    # CI runs as root, where the tmpfs mounts and this test always runs.
    if shutil.which("mount") is None:
        pytest.skip("no mount command: cannot make a small filesystem to fill")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mnt)], capture_output=True, text=True
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Write until the filesystem refuses (ENOSPC)."""
    chunk = b"\0" * 65536
    with open(path, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    # Squeeze out the last partial block too.
    with open(path.with_suffix(".tail"), "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 512)
        except OSError:
            pass


def free(path: Path) -> None:
    os.unlink(path)
    os.unlink(path.with_suffix(".tail"))


async def test_disk_full_refuses_cleanly_and_recovers(small_fs: Path) -> None:
    ip = unique_loopback_ip()
    directory = small_fs / "ls"
    write_localserve_config(directory, ip)
    filler = small_fs / "filler"
    acked: list[str] = []
    with running(["localserve", "-dir", str(directory)], directory, ip) as server:
        http = httpx.Client(timeout=20)

        def send(subject: str) -> httpx.Response:
            r = webapi_send(http, ip, "user@example.org", subject)
            if r.status_code == 200:
                acked.append(subject)
            return r

        def before() -> None:
            for i in range(5):
                assert send(f"before{i}").status_code == 200

        await trio.to_thread.run_sync(before)

        # Fill the disk while a burst of sends (and their deliveries) is going.
        burst = threading.Thread(target=lambda: [send(f"burst{i}") for i in range(30)])
        burst.start()
        await trio.to_thread.run_sync(fill, filler)
        await trio.to_thread.run_sync(burst.join, 60)

        def while_full() -> None:
            r = send("full-webapi")
            assert r.status_code != 200, r.text
            assert r.status_code < 600
            with smtplib.SMTP(ip, 1587, timeout=20) as s:
                s.login(*AUTH)
                with pytest.raises(smtplib.SMTPResponseException) as info:
                    smtp_submit(s, "user@example.org", "full-smtp")
                assert 400 <= info.value.smtp_code < 500, info.value
            assert server.proc.poll() is None

        await trio.to_thread.run_sync(while_full)
        await trio.sleep(1.0)  # the queue meets the full disk too
        await trio.to_thread.run_sync(free, filler)

        def after() -> None:
            assert send("after-webapi").status_code == 200
            with smtplib.SMTP(ip, 1587, timeout=20) as s:
                s.login(*AUTH)
                smtp_submit(s, "user@example.org", "after-smtp")
            acked.append("after-smtp")

        await trio.to_thread.run_sync(after)
        # Deliveries that met the full disk got a 4xx and wait for their
        # retry; the administrator who freed the space flushes the queue.
        conf = str(directory / "mox.conf")
        r = await trio.to_thread.run_sync(lambda: run_cli("-config", conf, "queue", "schedule", "-now", "0s"))
        assert r.returncode == 0, r.stderr
        deadline = trio.current_time() + 30
        while (state := read_db(directory)).queued or any(state.delivered_ids[s] == 0 for s in acked):
            assert trio.current_time() < deadline, (state, server.output()[-3000:])
            await trio.sleep(0.2)
        assert server.proc.poll() is None
        await trio.to_thread.run_sync(http.close)

    state = read_db(directory)
    twice = {s: n for s, n in state.delivered_ids.items() if n > 1}
    assert not twice, f"delivered twice: {twice}"
    assert [s for s in acked if state.delivered_ids[s] != 1] == []
    assert state.delivered_ids["full-webapi"] == 0 and state.delivered_ids["full-smtp"] == 0
