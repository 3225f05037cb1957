"""A started localserve stays small at rest: libraries load when first needed.

The server runs as a child process, so ``VmRSS`` in /proc measures only
what it holds. It is measured on a second start, as a server normally
runs: the first start also generates the TLS and DKIM keys. The bounds are
generous (a started localserve holds about 42 MiB; it held 76 MiB when
every library was imported at start, 56 MiB while Quart was), so only a
real regression trips them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from tests.support.procs import run_cli, running, unique_loopback_ip

pytestmark = pytest.mark.slow

AUTH = ("mox@localhost", "moxmoxmox")
IDLE_BOUND_MIB = 50
AFTER_SENDS_BOUND_MIB = 100
SENDS = 100


def vmrss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS in /proc status")


def mapped(pid: int, fragment: str) -> bool:
    """Whether a file whose path contains ``fragment`` is mapped into the process."""
    return fragment in Path(f"/proc/{pid}/maps").read_text()


def test_idle_localserve_is_small_and_loads_signing_and_page_code_only_when_used(tmp_path: Path) -> None:
    ip = unique_loopback_ip()
    directory = tmp_path / "localserve"
    r = run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly")
    assert r.returncode == 0, r.stderr
    with running(["localserve", "-dir", str(directory)], directory, ip) as server:
        pid = server.proc.pid
        base = f"http://{server.ip}:1080/webapi/v0"
        with httpx.Client(timeout=30, auth=AUTH) as client:
            r = client.post(f"{base}/SuppressionList", data={"request": "{}"})
            assert r.status_code == 200, r.text
            assert r.json() == {"Suppressions": []}
            time.sleep(2)
            idle = vmrss_mib(pid)
            assert idle < IDLE_BOUND_MIB, f"idle VmRSS {idle:.1f} MiB"
            # cryptography (a large native library) is for signing and keys,
            # which nothing has needed yet.
            assert not mapped(pid, "cryptography/hazmat/bindings/_rust")
            # Nor has any page: the webapi's method calls are answered without
            # Quart, whose stack (werkzeug, jinja2) brings markupsafe's C part.
            assert not mapped(pid, "markupsafe/_speedups")

            request = {"To": [{"Address": "mox@localhost"}], "Subject": "memory", "Text": "hello\n" * 40}
            for n in range(SENDS):
                r = client.post(f"{base}/Send", data={"request": json.dumps(request)})
                assert r.status_code == 200, (n, r.text)
            # The first Send signed with the account's DKIM key.
            assert mapped(pid, "cryptography/hazmat/bindings/_rust")
            time.sleep(2)
            after = vmrss_mib(pid)
            assert after < AFTER_SENDS_BOUND_MIB, f"VmRSS {after:.1f} MiB after {SENDS} Sends"

            # The first page served builds the Quart app.
            r = client.get(f"{base}/")
            assert r.status_code == 200 and "Send" in r.text
            assert mapped(pid, "markupsafe/_speedups")
