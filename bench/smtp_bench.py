"""SMTP benchmark: messages/s over N connections, submission or incoming delivery.

Starts `moxtrio localserve` as a child process on a loopback address of its
own, puts the whole queue on hold (a hold rule with no conditions) so only
submission is measured, then submits for a bounded time/count from N
client threads, each with one authenticated connection (smtplib, AUTH PLAIN).
Reports messages/s, p50/p99 per-message latency, and the server's peak RSS.

    python bench/smtp_bench.py [-c 4] [-n 2000] [-size 1024] [-seconds 20]

``-mode delivery`` measures incoming mail instead: DKIM-signed messages from
``bench@sender.example`` to ``mox@localhost`` on port 1025, with the
sender's A, SPF, DKIM and DMARC records served by the tests' local DNS
responder (so SPF, DKIM and DMARC all run and pass). ``-root DIR`` runs the
server from another checkout (for before/after comparisons).

    python bench/smtp_bench.py -mode delivery [-root /tmp/before] [-c 4] [-size 102400]
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
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.procs import run_cli, running, unique_loopback_ip  # noqa: E402


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process has used so far (robust on a shared machine)."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:

    ap = argparse.ArgumentParser()
    ap.add_argument("-c", type=int, default=4, help="parallel connections")
    ap.add_argument("-n", type=int, default=2000, help="messages in total (upper bound)")
    ap.add_argument("-size", type=int, default=1024, help="message body size in bytes")
    ap.add_argument("-seconds", type=float, default=20.0, help="time bound")
    ap.add_argument("-mode", choices=["submission", "delivery"], default="submission")
    ap.add_argument("-root", default=str(ROOT), help="code tree to run the server from (delivery)")
    ap.add_argument("-profile", default="", help="write the server's cProfile stats here (delivery)")
    a = ap.parse_args()
    if a.mode == "delivery":
        delivery_bench(a)
        return

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
            data = b"From: mox@localhost\r\nTo: x@example.org\r\nSubject: bench\r\n\r\n" + body
            lat, elapsed = _run_clients(
                ip, 1587, a, lambda s: s.sendmail("mox@localhost", ["x@example.org"], data),
                setup=lambda s: s.login("mox@localhost", "moxmoxmox"))
            print(
                f"smtp submission: {len(lat)} messages of ~{len(body)} bytes over {a.c} connections "
                f"in {elapsed:.2f}s = {len(lat) / elapsed:.0f} msg/s; "
                f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms; "
                f"server RSS idle {idle_rss:.0f} MB, peak {peak_rss_mb(server.proc.pid):.0f} MB"
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _run_clients(ip: str, port: int, a: argparse.Namespace, send: Any,
                 setup: Any = None) -> tuple[list[float], float]:
    """``a.c`` threads, one connection each (``setup(conn)`` first, e.g. AUTH), calling
    ``send(conn)`` until the count or time bound; sorted latencies and elapsed seconds."""
    import smtplib

    latencies: list[float] = []
    lock = threading.Lock()
    count = [0]
    deadline = time.monotonic() + a.seconds

    def client() -> None:
        with smtplib.SMTP(ip, port, timeout=60) as s:
            s.ehlo("client.sender.example")
            if setup is not None:
                setup(s)
            while time.monotonic() < deadline:
                with lock:
                    if count[0] >= a.n:
                        return
                    count[0] += 1
                t0 = time.perf_counter()
                send(s)
                with lock:
                    latencies.append(time.perf_counter() - t0)

    threads = [threading.Thread(target=client) for _ in range(a.c)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(latencies), time.perf_counter() - t0


def stop_process(proc: Any) -> None:
    """Ask a server to stop (SIGTERM); kill it if it has not after 20 seconds."""
    import subprocess

    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def delivery_bench(a: argparse.Namespace) -> None:
    import subprocess

    import dkim as dkimpy
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.support.dnsresponder import DNSResponder

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    der = key.public_key().public_bytes(serialization.Encoding.DER,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    import base64

    record = "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()
    zone = {
        "sender.example": {"A": ["127.0.0.1"], "TXT": ['"v=spf1 ip4:127.0.0.0/8 -all"']},
        "sel._domainkey.sender.example": {"TXT": [" ".join(f'"{record[i:i + 255]}"' for i in range(0, len(record), 255))]},
        "_dmarc.sender.example": {"TXT": ['"v=DMARC1; p=reject"']},
    }
    body = (b"x" * 76 + b"\r\n") * max(1, a.size // 78)
    msg = (b"From: Bench <bench@sender.example>\r\nTo: mox@localhost\r\nSubject: bench\r\n"
           b"Message-ID: <bench@sender.example>\r\n\r\n" + body)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                            serialization.NoEncryption())
    signed = bytes(dkimpy.sign(msg, b"sel", b"sender.example", pem,
                               include_headers=[b"from", b"to", b"subject", b"message-id"])) + msg
    tmp = Path(tempfile.mkdtemp(prefix="moxtrio-bench-"))
    ip = unique_loopback_ip()
    try:
        with DNSResponder(zone) as dns:
            proc = subprocess.Popen(
                [sys.executable, *(["-m", "cProfile", "-o", a.profile] if a.profile else []), str(ROOT / "bench" / "_delivery_child.py"), a.root, str(tmp / "ls"), ip,
                 str(dns.port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith("READY"):
                        break
                else:
                    raise SystemExit("server did not start")
                threading.Thread(target=lambda: [None for _ in proc.stdout or []], daemon=True).start()
                idle_rss = rss_mb(proc.pid)
                # Warm-up, not measured: one-time costs (imports, the public suffix
                # list, the sender's DNS answers and key) would count per message.
                import smtplib
                with smtplib.SMTP(ip, 1025, timeout=60) as s:
                    s.ehlo("client.sender.example")
                    for _ in range(20):
                        s.sendmail("bench@sender.example", ["mox@localhost"], signed)
                cpu0 = cpu_seconds(proc.pid)
                lat, elapsed = _run_clients(
                    ip, 1025, a, lambda s: s.sendmail("bench@sender.example", ["mox@localhost"], signed))
                cpu = cpu_seconds(proc.pid) - cpu0
                print(
                    f"smtp delivery ({a.root}): {len(lat)} messages of {len(signed)} bytes over {a.c} "
                    f"connections in {elapsed:.2f}s = {len(lat) / elapsed:.1f} msg/s; "
                    f"p50 {statistics.median(lat) * 1000:.1f} ms, p99 {lat[int(len(lat) * 0.99) - 1] * 1000:.1f} ms; "
                    f"server CPU {cpu / len(lat) * 1000:.2f} ms/msg; "
                    f"server RSS idle {idle_rss:.0f} MB, peak {peak_rss_mb(proc.pid):.0f} MB"
                )
            finally:
                stop_process(proc)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
