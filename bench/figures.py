"""Every throughput, start-up and memory figure of the performance goals, in one command.

For moxtrio, and with ``--mox PATH`` for a mox binary side by side (same
client, same phases, interleaved so both see the same machine load):

- webapi Send of a held message (FutureRelease an hour ahead) with 8 and 32
  concurrent keep-alive connections: requests/s and server CPU ms per request;
- SMTP submission of 1 KB messages over 4 authenticated connections, with the
  whole queue on hold: messages/s and server CPU ms per message;
- start-up until the webapi answers, and resident memory when idle: taken
  from ``bench/startup_rss.py --json`` when that script is present.

Each throughput figure is the median of ``--runs`` rounds, and every figure of
every round gets a fresh server (``localserve`` in a new directory on a loopback
address of its own, daily limits and mox's HTTP request rate limit lifted): mox
counts the account's messages of the last 24 hours on every submission, so its
cost per message grows with what earlier phases sent. Server CPU per request (utime+stime from
/proc/<pid>/stat) is printed beside the rates because it hardly depends on
what else the machine runs; the load average is printed with the table.

    .venv/bin/python bench/figures.py [--mox /tmp/mox] [--runs 3] [--seconds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from smtp_bench import _run_clients, stop_process  # noqa: E402
from webapi_bench import cpu_seconds, level, request_body  # noqa: E402

from tests.support.procs import child_env, moxtrio_cmd, unique_loopback_ip  # noqa: E402

LIMITS = "\tmox:\n\t\tMaxOutgoingMessagesPerDay: 100000000\n\t\tMaxFirstTimeRecipientsPerDay: 100000000\n"
WEBSERVER_HTTP = "\t\tWebserverHTTP:\n\t\t\tEnabled: true\n"
SMTP_BODY = (b"x" * 76 + b"\r\n") * (1024 // 78)
SMTP_DATA = b"From: mox@localhost\r\nTo: x@example.org\r\nSubject: bench\r\n\r\n" + SMTP_BODY


@dataclass
class Server:
    """A running localserve: its process, address and a way to run its CLI."""

    proc: subprocess.Popen[bytes]
    ip: str
    cli: Callable[..., subprocess.CompletedProcess[str]]


def _port_open(ip: str, port: int) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=0.5):
            return True
    except OSError:
        return False


#: The moxtrio checkout whose server is measured (``--root``; this one by default).
MOXTRIO_ROOT = ROOT


@contextmanager
def localserve(mox: str | None) -> Iterator[Server]:
    """A fresh localserve of moxtrio (``mox`` None) or of the mox binary at ``mox``."""
    tmp = Path(tempfile.mkdtemp(prefix="figures-"))
    directory = tmp / "ls"
    ip = unique_loopback_ip()
    base = [mox] if mox else moxtrio_cmd()
    env = child_env()
    if not mox:
        env["PYTHONPATH"] = os.pathsep.join([str(MOXTRIO_ROOT), env["PYTHONPATH"]])
    run = dict(cwd=MOXTRIO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    init = subprocess.run([*base, "localserve", "-dir", str(directory), "-ip", ip, "-initonly"], **run)  # type: ignore[call-overload]
    if init.returncode != 0:
        raise SystemExit(f"localserve -initonly failed: {init.stdout}{init.stderr}")
    domains = directory / "domains.conf"
    domains.write_text(domains.read_text().replace("\tmox:\n", LIMITS, 1))
    # mox refuses more than 1000 HTTP requests a minute from one IP unless told not to.
    conf = directory / "mox.conf"
    conf.write_text(conf.read_text().replace(WEBSERVER_HTTP, WEBSERVER_HTTP + "\t\t\tRateLimitDisabled: true\n", 1))
    log = open(tmp / "server.log", "wb")
    proc = subprocess.Popen([*base, "localserve", "-dir", str(directory)], cwd=MOXTRIO_ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*base, "-config", str(directory / "mox.conf"), *args], **run)  # type: ignore[call-overload, no-any-return]

    try:
        deadline = time.monotonic() + 60
        while not (_port_open(ip, 1080) and _port_open(ip, 1587)):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"server did not start:\n{(tmp / 'server.log').read_text()}")
            time.sleep(0.05)
        yield Server(proc, ip, cli)
    finally:
        stop_process(proc)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def webapi_send(server: Server, concurrency: int, seconds: float) -> tuple[float, float]:
    """Held Sends for ``seconds``: requests/s and server CPU ms per request."""
    url = f"http://{server.ip}:1080/webapi/v0/Send"
    res = trio.run(level, url, concurrency, seconds, request_body(False), server.proc.pid)
    cpu = res["server_cpu_s"]
    if res["errors"]:
        print(f"  ({res['errors']} failed requests)", file=sys.stderr)
    return res["rps"], cpu * 1000 / max(1, res["requests"])


def smtp_submission(server: Server, connections: int, seconds: float) -> tuple[float, float]:
    """1 KB submissions with the queue on hold: messages/s and server CPU ms per message."""
    r = server.cli("queue", "holdrules", "add")
    if r.returncode != 0:
        raise SystemExit(f"queue holdrules add failed: {r.stdout}{r.stderr}")
    opts = argparse.Namespace(c=connections, n=10**9, seconds=seconds)
    login = lambda s: s.login("mox@localhost", "moxmoxmox")  # noqa: E731
    send = lambda s: s.sendmail("mox@localhost", ["x@example.org"], SMTP_DATA)  # noqa: E731
    _run_clients(server.ip, 1587, argparse.Namespace(c=1, n=20, seconds=seconds), send, setup=login)
    cpu0 = cpu_seconds(server.proc.pid)
    lat, elapsed = _run_clients(server.ip, 1587, opts, send, setup=login)
    cpu = cpu_seconds(server.proc.pid) - cpu0
    return len(lat) / elapsed, cpu * 1000 / max(1, len(lat))


THROUGHPUT = [
    ("webapi Send, held, concurrency 8", "req/s", lambda s, sec: webapi_send(s, 8, sec)),
    ("webapi Send, held, concurrency 32", "req/s", lambda s, sec: webapi_send(s, 32, sec)),
    ("SMTP submission, 1 KB, 4 connections", "msg/s", lambda s, sec: smtp_submission(s, 4, sec)),
]


def startup_rss(mox: str | None, runs: int, root: Path) -> dict[str, dict[str, float]] | str:
    """Start-up and idle RSS figures from ``bench/startup_rss.py --json``, or why not.

    The script prints one JSON object: ``{"moxtrio": {"startup_s": .., "idle_rss_mib": ..},
    "mox": {...}}`` (``mox`` only when given ``--mox``). For another checkout
    (``--root``) its ``--before`` figures are the ones returned as ``moxtrio``.
    """
    script = ROOT / "bench" / "startup_rss.py"
    if not script.exists():
        return "startup_rss.py missing"
    cmd = [sys.executable, str(script), "--json", "--runs", str(runs), *(["--mox", mox] if mox else [])]
    other = root.resolve() != ROOT.resolve()
    if other:
        cmd += ["--before", str(root)]
    r = subprocess.run(cmd, cwd=ROOT, env=child_env(), capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        return f"startup_rss.py failed: {(r.stderr or r.stdout).strip().splitlines()[-1:]}"
    try:
        data = json.loads(r.stdout)
    except ValueError:
        return "startup_rss.py printed no JSON"
    if not isinstance(data, dict):
        return "startup_rss.py printed no JSON object"
    if other:
        data["moxtrio"] = data.get("moxtrio-before", {})
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mox", default="", help="path of a mox binary to measure side by side")
    ap.add_argument("--runs", type=int, default=3, help="rounds per figure (the median is printed)")
    ap.add_argument("--seconds", type=float, default=8.0, help="length of each throughput phase")
    ap.add_argument("--only", default="", help="comma-separated figure numbers (1-3) to run, default all")
    ap.add_argument("--root", default=str(ROOT),
                    help="moxtrio checkout to run the server from (e.g. an export of main, for before/after)")
    a = ap.parse_args()
    global MOXTRIO_ROOT
    MOXTRIO_ROOT = Path(a.root).resolve()
    kinds: list[str | None] = [None] + ([a.mox] if a.mox else [])
    only = {int(x) for x in a.only.split(",") if x} or set(range(1, len(THROUGHPUT) + 1))
    figures = [(i, f) for i, f in enumerate(THROUGHPUT, 1) if i in only]
    results: dict[tuple[int, str | None], list[tuple[float, float]]] = {}
    load0 = os.getloadavg()
    for rnd in range(a.runs):
        for i, (name, unit, measure) in figures:
            # Alternate who goes first so a change in machine load hits both alike.
            for kind in kinds if (rnd + i) % 2 == 0 else kinds[::-1]:
                with localserve(kind or None) as server:
                    rate, cpu = measure(server, a.seconds)
                results.setdefault((i, kind), []).append((rate, cpu))
                who = "mox" if kind else "moxtrio"
                print(f"  round {rnd + 1} {who:8s} {name}: {rate:.1f} {unit}, {cpu:.2f} ms CPU",
                      file=sys.stderr)
    load1 = os.getloadavg()

    print(f"load average before {load0[0]:.2f}, after {load1[0]:.2f}; "
          f"{a.runs} runs of {a.seconds:.0f}s, medians; CPU is server CPU per request")
    head = f"{'figure':40s} {'moxtrio':>22s}"
    if a.mox:
        head += f" {'mox':>22s} {'ratio':>6s}"
    print(head)
    for i, (name, unit, _) in figures:
        ours = results[(i, None)]
        rate = statistics.median(r for r, _ in ours)
        cpu = statistics.median(c for _, c in ours)
        line = f"{name:40s} {rate:7.1f} {unit} {cpu:5.2f} ms"
        if a.mox:
            theirs = results[(i, a.mox)]
            mrate = statistics.median(r for r, _ in theirs)
            mcpu = statistics.median(c for _, c in theirs)
            line += f" {mrate:7.1f} {unit} {mcpu:5.2f} ms {rate / mrate:6.2f}"
        print(line)
    sr = startup_rss(a.mox or None, a.runs, MOXTRIO_ROOT)
    for label, key, unit in (("start-up until the webapi answers", "startup_s", "s"),
                             ("resident memory when idle", "idle_rss_mib", "MiB")):
        if isinstance(sr, str):
            print(f"{label:40s} {sr}")
            continue
        ours_v = sr.get("moxtrio", {}).get(key)
        line = f"{label:40s} {ours_v if ours_v is not None else '?':>10} {unit}"
        theirs_v = sr.get("mox", {}).get(key) if a.mox else None
        if theirs_v is not None:
            line += f" {theirs_v:>16} {unit}"
            if ours_v:
                line += f" {ours_v / theirs_v:11.2f}"
        print(line)


if __name__ == "__main__":
    main()
