"""Benchmark webapi Send: requests/s and p50/p99 latency at several concurrencies, and RSS.

Runs ``moxtrio localserve`` as a child process (so the load generator does
not share the server's interpreter) on a unique loopback IP, with the
account's daily limits raised so thousands of sends are allowed. Each
level sends for ``--seconds`` with ``c`` concurrent keep-alive
connections (httpx on trio).

By default every Send carries a FutureRelease an hour ahead, so the figure
is the Send path alone (auth, decode, compose, durable file + queue
commit); ``--deliver`` lets localserve deliver each message to itself at
once, which adds SMTP delivery and Inbox storage to the same two cores.

    .venv/bin/python bench/webapi_bench.py [--seconds 10] [--levels 1,8,32] [--deliver] [--postgres]

``--postgres`` runs the server on PostgreSQL (a private cluster started for
the run, as the tests do) and also reports the database server's CPU time
per request.
"""

from __future__ import annotations

import argparse
import base64
import json
import statistics
import sys
import tempfile
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.store.settings import DatabaseSettings  # noqa: E402
from plugins.localserve.init import write_localserve_config  # noqa: E402
from tests.support.backend import write_store_settings  # noqa: E402
from tests.support.pgcluster import PgCluster  # noqa: E402
from tests.support.procs import running, unique_loopback_ip  # noqa: E402

AUTH = ("mox@localhost", "moxmoxmox")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    import os

    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pg_cpu_seconds(cluster: PgCluster) -> float:
    """CPU time of the cluster's postmaster and all its backends so far."""
    import os

    pid = int((cluster.datadir / "postmaster.pid").read_text().split()[0])
    total = cpu_seconds(pid)
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def request_body(deliver: bool) -> str:
    req: dict[str, object] = {
        "To": [{"Address": "mox@localhost"}],
        "Subject": "benchmark message",
        "Text": "Hello,\n\nthis is a benchmark message of a typical short size.\n" * 8,
    }
    if not deliver:
        later = datetime.now(UTC) + timedelta(hours=1)
        req["FutureRelease"] = later.strftime("%Y-%m-%dT%H:%M:%SZ")
    return json.dumps(req)


def encoded_request(body: str) -> tuple[bytes, dict[str, str]]:
    """The form body and headers of one Send, encoded once for the whole run."""
    token = base64.b64encode(f"{AUTH[0]}:{AUTH[1]}".encode()).decode("ascii")
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Authorization": f"Basic {token}"}
    return urllib.parse.urlencode({"request": body}).encode("ascii"), headers


async def level(url: str, concurrency: int, seconds: float, body: str, pid: int = 0) -> dict[str, float]:
    """``concurrency`` workers, each with a keep-alive connection of its own, for ``seconds``.

    Each worker has its own one-connection httpx client rather than all
    sharing one pool: httpx's pool matches every queued request against
    every connection each time a response ends, which at 32 connections
    cost the load generator about 2 ms of CPU per request against a server
    that answers in bursts (group commit), and only 1 ms against one that
    does not. On two cores that CPU was taken from the server under test,
    unevenly. The request is encoded once; the bytes on the wire are those
    of ``data={"request": body}, auth=AUTH``. With ``pid``, the result's
    ``server_cpu_s`` is that process's CPU time during the timed window.
    """
    latencies: list[float] = []
    errors = 0
    content, headers = encoded_request(body)
    go = trio.Event()
    start = deadline = 0.0  # set when the workers are ready; the closure reads them then

    async def worker() -> None:
        nonlocal errors
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(timeout=60, limits=limits) as http:
            # Warm up: the connection, the password check cache, imports.
            for _ in range(2):
                await http.post(url, content=content, headers=headers)
            await go.wait()
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                r = await http.post(url, content=content, headers=headers)
                dt = time.perf_counter() - t0
                if r.status_code != 200:
                    errors += 1
                    if errors < 3:
                        print("error:", r.status_code, r.text.strip(), file=sys.stderr)
                    continue
                latencies.append(dt)

    async with trio.open_nursery() as n:
        for _ in range(concurrency):
            n.start_soon(worker)
        # Let every worker connect and warm up before the clock starts.
        await trio.sleep(0.5)
        cpu0 = cpu_seconds(pid) if pid else 0.0
        start = time.monotonic()
        deadline = start + seconds
        go.set()
    elapsed = time.monotonic() - start
    cpu = cpu_seconds(pid) - cpu0 if pid else 0.0
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": q[49] * 1000,
        "p99_ms": q[98] * 1000,
        "server_cpu_s": cpu,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--levels", default="1,8,32")
    ap.add_argument("--deliver", action="store_true")
    ap.add_argument("--no-dkim", action="store_true", help="drop localserve's DKIM signing selector")
    ap.add_argument("--postgres", action="store_true", help="store on PostgreSQL (private cluster)")
    args = ap.parse_args()
    ip = unique_loopback_ip()
    # fsync on: a commit's flush is part of what SQLite pays too.
    cluster = PgCluster(fsync=True).start() if args.postgres else None
    try:
        run(args, ip, cluster)
    finally:
        if cluster is not None:
            cluster.stop()


def run(args: argparse.Namespace, ip: str, cluster: PgCluster | None) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / "localserve"
        write_localserve_config(directory, ip)
        domains = directory / "domains.conf"
        text = domains.read_text()
        text = text.replace(
            "\tmox:\n",
            "\tmox:\n\t\tMaxOutgoingMessagesPerDay: 100000000\n\t\tMaxFirstTimeRecipientsPerDay: 100000000\n",
            1,
        )
        if args.no_dkim:
            text = text.replace("\t\t\tSign:\n\t\t\t\t- localserve\n", "")
        domains.write_text(text)
        if cluster is not None:
            url = cluster.url(cluster.create_database())
            write_store_settings(directory, DatabaseSettings(backend="postgres", url=url))
        with running(["localserve", "-dir", str(directory)], directory, ip) as server:
            url = f"http://{ip}:1080/webapi/v0/Send"
            body = request_body(args.deliver)
            print(f"server pid {server.proc.pid}, RSS at start {rss_kib(server.proc.pid)} KiB")
            for c in (int(x) for x in args.levels.split(",")):
                pg0 = pg_cpu_seconds(cluster) if cluster is not None else 0.0
                res = trio.run(level, url, c, args.seconds, body, server.proc.pid)
                cpu = res["server_cpu_s"]
                pg = pg_cpu_seconds(cluster) - pg0 if cluster is not None else 0.0
                res["rss_kib"] = rss_kib(server.proc.pid)
                res["cpu_ms_per_req"] = cpu * 1000 / max(1, res["requests"])
                print(
                    f"c={c:3d}  {res['rps']:7.1f} req/s  p50 {res['p50_ms']:6.2f} ms  "
                    f"p99 {res['p99_ms']:7.2f} ms  n={res['requests']} errors={res['errors']}  "
                    f"RSS {res['rss_kib'] / 1024:.1f} MiB  server CPU {res['cpu_ms_per_req']:.2f} ms/req"
                    + (f"  PostgreSQL CPU {pg * 1000 / max(1, res['requests']):.2f} ms/req" if cluster else "")
                )


if __name__ == "__main__":
    main()
