"""Start-up time until the webapi answers, and resident memory at rest, of localserve.

For each run, a new directory is made and ``localserve -dir D -ip 127.x``
is started twice: the first start writes the config and keys, the second
(the figure that counts) finds the directory ready. Start-up is the time
from exec until a webapi request (``POST /webapi/v0/SuppressionList`` with
basic auth) gets its 200 answer; the client polls every few milliseconds.
The CPU time the server used until then is reported too
(``startup_cpu_s``): on a busy machine wall time suffers most.

After the second start the server is left alone for ``--idle`` seconds and
its VmRSS is read from ``/proc/<pid>/status`` (``idle_rss_mib``); then
``--sends`` webapi Sends (delivered to the account, one keep-alive
connection) are made and, after another pause, VmRSS is read again
(``rss_after_sends_mib``).

moxtrio runs as ``python -m core.cli`` with this interpreter, its modules'
bytecode compiled first (``compileall``), as an installed server has it:
``PYTHONDONTWRITEBYTECODE`` in the environment would otherwise make every
start compile the server's sources again (``--no-bytecode`` measures that,
keeping the variable and compiling nothing). ``--mox PATH`` also measures
a mox binary the same way, and ``--before DIR`` another moxtrio checkout
(before a change), in runs interleaved with moxtrio's so all see the same
machine load. Figures are medians over ``--runs`` runs.

    .venv/bin/python bench/startup_rss.py [--runs 3] [--mox /tmp/mox] [--json]

``--json`` prints one object keyed by program (``moxtrio``, ``mox``), each
with ``startup_s`` and ``idle_rss_mib`` (and the other figures above), for
scripts that collect bench figures.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WEBAPI_PORT = 1080
AUTH = "Basic " + base64.b64encode(b"mox@localhost:moxmoxmox").decode()
PROBE_BODY = "request=%7B%7D"  # request={}


def loopback_ip() -> str:
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


def vmrss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process so far (steadier than wall time on a busy machine)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def post(conn: http.client.HTTPConnection, path: str, body: str) -> tuple[int, bytes]:
    conn.request("POST", path, body=body, headers={
        "Authorization": AUTH, "Content-Type": "application/x-www-form-urlencoded",
    })
    resp = conn.getresponse()
    return resp.status, resp.read()


def wait_webapi(proc: subprocess.Popen[bytes], ip: str, started: float, timeout: float) -> float:
    """Seconds from ``started`` until the webapi answered 200."""
    deadline = started + timeout
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before the webapi answered")
        conn = http.client.HTTPConnection(ip, WEBAPI_PORT, timeout=timeout)
        try:
            status, body = post(conn, "/webapi/v0/SuppressionList", PROBE_BODY)
        except (ConnectionRefusedError, ConnectionResetError, http.client.RemoteDisconnected):
            time.sleep(0.003)
            continue
        finally:
            conn.close()
        if status == 200:
            return time.perf_counter() - started
        raise RuntimeError(f"webapi answered {status}: {body[:200]!r}")
    raise RuntimeError("timeout waiting for the webapi")


class Program:
    def __init__(self, name: str, argv: list[str], cwd: Path | None, env: dict[str, str] | None) -> None:
        self.name, self.argv, self.cwd, self.env = name, argv, cwd, env

    def start(self, directory: Path, ip: str | None, log: Path) -> tuple[subprocess.Popen[bytes], float]:
        args = [*self.argv, "localserve", "-dir", str(directory)] + (["-ip", ip] if ip else [])
        with open(log, "ab") as out:
            t0 = time.perf_counter()
            proc = subprocess.Popen(args, cwd=self.cwd, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        return proc, t0


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def send_body(n: int) -> str:
    from urllib.parse import quote

    req = {
        "To": [{"Address": "mox@localhost"}],
        "Subject": f"startup bench message {n}",
        "Text": "Hello,\n\nthis is a benchmark message of a typical short size.\n" * 8,
    }
    return "request=" + quote(json.dumps(req))


def one_run(prog: Program, sends: int, idle: float, timeout: float) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix=f"startup-{prog.name}-") as tmp:
        directory = Path(tmp) / "localserve"
        log = Path(tmp) / "server.log"
        ip = loopback_ip()
        proc, t0 = prog.start(directory, ip, log)
        try:
            first = wait_webapi(proc, ip, t0, timeout)
        finally:
            stop(proc)
        proc, t0 = prog.start(directory, None, log)
        try:
            second = wait_webapi(proc, ip, t0, timeout)
            cpu = cpu_seconds(proc.pid)
            time.sleep(idle)
            idle_rss = vmrss_mib(proc.pid)
            conn = http.client.HTTPConnection(ip, WEBAPI_PORT, timeout=timeout)
            try:
                for n in range(sends):
                    status, body = post(conn, "/webapi/v0/Send", send_body(n))
                    if status != 200:
                        raise RuntimeError(f"Send answered {status}: {body[:200]!r}")
            finally:
                conn.close()
            time.sleep(idle)
            after = vmrss_mib(proc.pid)
        except Exception:
            sys.stderr.write(log.read_text(errors="replace")[-4000:])
            raise
        finally:
            stop(proc)
    return {"first_start_s": first, "startup_s": second, "startup_cpu_s": cpu, "idle_rss_mib": idle_rss,
            "rss_after_sends_mib": after}


def moxtrio_program(name: str, root: Path, no_bytecode: bool) -> Program:
    """moxtrio from the checkout at ``root``, run by this interpreter."""
    env = dict(os.environ)
    if not no_bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run([sys.executable, "-m", "compileall", "-q", "core", "plugins", "moxtrio"],
                       cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
    env["PYTHONPATH"] = os.pathsep.join([str(root)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    return Program(name, [sys.executable, "-m", "core.cli"], root, env)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--mox", help="path of a mox binary to measure the same way")
    ap.add_argument("--before", metavar="DIR",
                    help="also measure the moxtrio checkout in DIR (e.g. a worktree of main), as moxtrio-before")
    ap.add_argument("--sends", type=int, default=200, help="webapi Sends before the second RSS reading")
    ap.add_argument("--idle", type=float, default=5.0, help="seconds at rest before each RSS reading")
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--json", action="store_true", help="print the medians as JSON")
    ap.add_argument("--no-bytecode", action="store_true",
                    help="leave PYTHONDONTWRITEBYTECODE as it is and compile nothing first")
    a = ap.parse_args()

    programs = [moxtrio_program("moxtrio", ROOT, a.no_bytecode)]
    if a.before:
        programs.append(moxtrio_program("moxtrio-before", Path(a.before).resolve(), a.no_bytecode))
    if a.mox:
        programs.append(Program("mox", [a.mox], None, None))
    results: dict[str, list[dict[str, float]]] = {p.name: [] for p in programs}
    for run in range(a.runs):
        for prog in programs:
            r = one_run(prog, a.sends, a.idle, a.timeout)
            results[prog.name].append(r)
            if not a.json:
                print(f"run {run + 1} {prog.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in r.items()),
                      file=sys.stderr)
    medians = {
        name: {k: round(statistics.median(r[k] for r in runs), 3) for k in runs[0]}
        for name, runs in results.items()
    }
    if a.json:
        print(json.dumps(medians))
        return 0
    keys = list(next(iter(medians.values())))
    print(f"median of {a.runs} runs, load average {os.getloadavg()[0]:.2f}")
    print(f"{'figure':<22}" + "".join(f"{name:>15}" for name in medians))
    for k in keys:
        print(f"{k:<22}" + "".join(f"{medians[name][k]:>15.3f}" for name in medians))
    return 0


if __name__ == "__main__":
    sys.exit(main())
