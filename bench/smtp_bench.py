"""SMTP submission benchmark: messages/s over N authenticated connections.

Starts `moxtrio localserve` as a child process on a loopback address of its
own, puts the whole queue on hold (a hold rule with no conditions) so only
submission is measured, then submits for a bounded time/count from N
client threads, each with one authenticated connection (smtplib, AUTH PLAIN).
Reports messages/s, p50/p99 per-message latency, and the server's peak RSS.

    python bench/smtp_bench.py [-c 4] [-n 2000] [-size 1024] [-seconds 20]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.procs import run_cli, running, unique_loopback_ip  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    import smtplib

    ap = argparse.ArgumentParser()
    ap.add_argument("-c", type=int, default=4, help="parallel connections")
    ap.add_argument("-n", type=int, default=2000, help="messages in total (upper bound)")
    ap.add_argument("-size", type=int, default=1024, help="message body size in bytes")
    ap.add_argument("-seconds", type=float, default=20.0, help="time bound")
    a = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="moxtrio-bench-"))
    ip = unique_loopback_ip()
    directory = tmp / "ls"
    body = (b"x" * 76 + b"\r\n") * max(1, a.size // 78)
    try:
        assert run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly").returncode == 0
        domains = directory / "domains.conf"
        # The daily limits (1000 messages) would end the benchmark early.
        domains.write_text(domains.read_text().replace(
            "\tmox:\n", "\tmox:\n\t\tMaxOutgoingMessagesPerDay: 10000000\n"
            "\t\tMaxFirstTimeRecipientsPerDay: 10000000\n", 1))
        with running(["localserve", "-dir", str(directory)], directory, ip) as server:
            conf = str(directory / "mox.conf")
            r = run_cli("-config", conf, "queue", "holdrules", "add")
            assert r.returncode == 0, r.stdout + r.stderr
            idle_rss = rss_mb(server.proc.pid)
            latencies: list[float] = []
            lock = threading.Lock()
            count = [0]
            deadline = time.monotonic() + a.seconds

            def client() -> None:
                with smtplib.SMTP(ip, 1587, timeout=60) as s:
                    s.login("mox@localhost", "moxmoxmox")
                    while time.monotonic() < deadline:
                        with lock:
                            if count[0] >= a.n:
                                return
                            count[0] += 1
                        data = b"From: mox@localhost\r\nTo: x@example.org\r\nSubject: bench\r\n\r\n" + body
                        t0 = time.perf_counter()
                        s.sendmail("mox@localhost", ["x@example.org"], data)
                        with lock:
                            latencies.append(time.perf_counter() - t0)

            threads = [threading.Thread(target=client) for _ in range(a.c)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - t0
            lat = sorted(latencies)
            print(
                f"smtp submission: {len(lat)} messages of ~{len(body)} bytes over {a.c} connections "
                f"in {elapsed:.2f}s = {len(lat) / elapsed:.0f} msg/s; "
                f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms; "
                f"server RSS idle {idle_rss:.0f} MB, peak {peak_rss_mb(server.proc.pid):.0f} MB"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
