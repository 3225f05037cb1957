"""Cluster benchmark: SQLite on one node against PostgreSQL on 1, 2 and 3 nodes, in one sitting.

For each setup the nodes are ``moxtrio serve`` child processes, each on its
own 127.x address (one PostgreSQL database shared by all; the private
PostgreSQL cluster of the tests, with fsync switched back on so commits are
as durable as SQLite's). Per setup:

1. webapi Send at c=8 and c=32 for ``--seconds`` each, the connections
   spread round-robin over the nodes; every Send has a FutureRelease an hour
   ahead, so this is the Send path alone (auth, compose, durable body and
   queue rows). Reported: requests/s, p50/p99, and server CPU ms per request
   (moxtrio nodes, and PostgreSQL's processes separately).
2. ``queue schedule -now 0s`` on one node makes every message of step 1
   due at once; the nodes deliver them to an aiosmtpd sink (its own
   process, eight recipient domains, each limited to 4 connections across
   the cluster). Reported: delivered messages/s until the sink has them all,
   and CPU ms per delivered message.

The machine's other load shows in the CPU figures less than in the rates,
so both are printed. One command:

    .venv/bin/python bench/cluster_bench.py [--seconds 8] [--setups sqlite1,pg1,pg2,pg3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.dns import NAMESERVERS_ENV  # noqa: E402
from tests.cluster.helpers import DOMAINS, dns_records  # noqa: E402
from tests.support.dnsresponder import DNSResponder  # noqa: E402
from tests.support.inproc import localserve_config_dir  # noqa: E402
from tests.support.pgcluster import PgCluster  # noqa: E402
from tests.support.procs import ServerProcess, run_cli, running  # noqa: E402
from tests.support.smtpsink import smtp_sink  # noqa: E402

AUTH = ("mox@localhost", "moxmoxmox")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process, plus that of its children it waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    try:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    except OSError:
        return []
    return [int(x) for x in out.split()]


def pg_cpu(pg: PgCluster) -> float:
    """CPU of the PostgreSQL server: postmaster, its live backends, and exited ones."""
    pid = int((pg.datadir / "postmaster.pid").read_text().split()[0])
    return cpu_seconds(pid) + sum(cpu_seconds(c) for c in children(pid))


@dataclass
class Setup:
    name: str
    nodes: int
    postgres: bool
    results: dict[str, Any] = field(default_factory=dict)


def node_dir(tmp: Path, i: int, url: str, sink_port: int) -> tuple[Path, str]:
    directory, ip = localserve_config_dir(
        tmp / f"n{i}",
        edit_mox=lambda t: t.replace("LogLevel: traceauth", "LogLevel: info"),
        edit_domains=lambda t: t.replace(
            "\tmox:\n",
            "\tmox:\n\t\tMaxOutgoingMessagesPerDay: 100000000\n\t\tMaxFirstTimeRecipientsPerDay: 100000000\n",
            1,
        ),
    )
    plugins = directory / "plugins"
    plugins.mkdir(exist_ok=True)
    if url:
        (plugins / "store.yaml").write_text(f"Database:\n  Backend: postgres\n  URL: {url}\n")
    (plugins / "queue.yaml").write_text(f"SMTPPort: {sink_port}\n")
    return directory, ip


def body(i: int) -> str:
    later = datetime.now(UTC) + timedelta(hours=1)
    return json.dumps({
        "To": [{"Address": f"r{i}@{DOMAINS[i % len(DOMAINS)]}"}],
        "Subject": "benchmark message",
        "Text": "Hello,\n\nthis is a benchmark message of a typical short size.\n" * 8,
        "FutureRelease": later.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })


async def send_level(ips: list[str], concurrency: int, seconds: float) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    counter = [0]
    deadline = time.monotonic() + seconds

    async def worker(n: int, http: httpx.AsyncClient) -> None:
        nonlocal errors
        url = f"http://{ips[n % len(ips)]}:1080/webapi/v0/Send"
        while time.monotonic() < deadline:
            counter[0] += 1
            t0 = time.perf_counter()
            r = await http.post(url, data={"request": body(counter[0])}, auth=AUTH)
            dt = time.perf_counter() - t0
            if r.status_code != 200:
                errors += 1
                if errors < 3:
                    print("error:", r.status_code, r.text.strip()[:200], file=sys.stderr)
                continue
            latencies.append(dt)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=60, limits=limits) as http:
        for ip in ips:  # warm up every node
            for _ in range(3):
                await http.post(f"http://{ip}:1080/webapi/v0/Send", data={"request": body(0)}, auth=AUTH)
        start = time.monotonic()
        async with trio.open_nursery() as nursery:
            for n in range(concurrency):
                nursery.start_soon(worker, n, http)
        elapsed = time.monotonic() - start
    latencies.sort()
    q = statistics.quantiles(latencies, n=100) if len(latencies) >= 2 else [0.0] * 99
    return {"requests": len(latencies), "errors": errors, "rps": len(latencies) / elapsed,
            "p50_ms": q[49] * 1000, "p99_ms": q[98] * 1000}


def run_setup(s: Setup, pg: PgCluster | None, seconds: float, tmp: Path) -> None:
    url = ""
    if s.postgres:
        assert pg is not None
        url = pg.url(pg.create_database())
    with smtp_sink(tmp / f"sink-{s.name}") as sink, DNSResponder(dns_records(sink.host)) as dns, ExitStack() as stack:
        env = {NAMESERVERS_ENV: f"{dns.host}:{dns.port}"}
        nodes: list[ServerProcess] = []
        ips = []
        for i in range(s.nodes):
            d, ip = node_dir(tmp / s.name, i, url, sink.port)
            nodes.append(stack.enter_context(running(["-config", str(d / "mox.conf"), "serve"], d, ip, env=env)))
            ips.append(ip)
            if i == 0:
                r = run_cli("-config", str(d / "mox.conf"), "setaccountpassword", "mox", stdin="moxmoxmox\n")
                assert r.returncode == 0, r.stderr
        conf0 = str(nodes[0].directory / "mox.conf")
        pids = [n.proc.pid for n in nodes]

        def cpu() -> tuple[float, float]:
            return sum(cpu_seconds(p) for p in pids), (pg_cpu(pg) if s.postgres and pg else 0.0)

        for c in (8, 32):
            a0, p0 = cpu()
            res = trio.run(send_level, ips, c, seconds)
            a1, p1 = cpu()
            n = max(1, res["requests"])
            res["moxtrio_cpu_ms"] = (a1 - a0) * 1000 / n
            res["pg_cpu_ms"] = (p1 - p0) * 1000 / n
            s.results[f"send_c{c}"] = res
            print(f"{s.name}: Send c={c:2d} {res['rps']:7.1f} req/s  p50 {res['p50_ms']:6.1f} ms"
                  f"  p99 {res['p99_ms']:7.1f} ms  n={res['requests']} err={res['errors']}"
                  f"  CPU/req moxtrio {res['moxtrio_cpu_ms']:.2f} ms, postgres {res['pg_cpu_ms']:.2f} ms",
                  flush=True)
        queued = sum(s.results[k]["requests"] for k in ("send_c8", "send_c32")) + 6 * len(ips)
        a0, p0 = cpu()
        t0 = time.monotonic()
        r = run_cli("-config", conf0, "queue", "schedule", "-now", "0s")
        assert r.returncode == 0, r.stderr
        deadline = t0 + 600
        got = 0
        while time.monotonic() < deadline:
            got = len(list(Path(sink.outdir).glob("*.json")))
            if got >= queued:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - t0
        a1, p1 = cpu()
        s.results["deliver"] = {
            "messages": got, "expected": queued, "per_s": got / elapsed,
            "moxtrio_cpu_ms": (a1 - a0) * 1000 / max(1, got), "pg_cpu_ms": (p1 - p0) * 1000 / max(1, got),
        }
        d = s.results["deliver"]
        print(f"{s.name}: delivered {got}/{queued} in {elapsed:.1f}s = {d['per_s']:.1f} msg/s"
              f"  CPU/msg moxtrio {d['moxtrio_cpu_ms']:.2f} ms, postgres {d['pg_cpu_ms']:.2f} ms", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--setups", default="sqlite1,pg1,pg2,pg3")
    ap.add_argument("--json", default="", help="also write the results to this file")
    args = ap.parse_args()
    setups = []
    for name in args.setups.split(","):
        pgs = name.startswith("pg")
        setups.append(Setup(name, int(name[-1]), pgs))
    pg = None
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="moxtrio-cluster-bench-") as tmp:
        try:
            if any(s.postgres for s in setups):
                pg = PgCluster().start()
                # The test cluster runs without fsync; a benchmark commits durably, as SQLite does.
                pg.admin("ALTER SYSTEM SET fsync = on", "ALTER SYSTEM SET full_page_writes = on",
                         "SELECT pg_reload_conf()")
            for s in setups:
                run_setup(s, pg, args.seconds, Path(tmp))
        finally:
            if pg is not None:
                pg.stop()
    print()
    print("| setup | Send c=8 req/s | Send c=32 req/s | CPU ms/Send (moxtrio + postgres) | delivered msg/s | CPU ms/delivery (moxtrio + postgres) |")
    print("|---|---|---|---|---|---|")
    for s in setups:
        r8, r32, d = s.results["send_c8"], s.results["send_c32"], s.results["deliver"]
        print(f"| {s.name} | {r8['rps']:.0f} | {r32['rps']:.0f} |"
              f" {r32['moxtrio_cpu_ms']:.2f} + {r32['pg_cpu_ms']:.2f} | {d['per_s']:.0f} |"
              f" {d['moxtrio_cpu_ms']:.2f} + {d['pg_cpu_ms']:.2f} |")
    print(f"load average after: {os.getloadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps({s.name: s.results for s in setups}, indent=2))


if __name__ == "__main__":
    main()
