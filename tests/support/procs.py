"""Run moxtrio as a child process, the way a user does, for end-to-end tests.

Each server gets a loopback address of its own (127.x.y.z) so tests can use
mox's fixed localserve ports in parallel and beside a running localserve.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def unique_loopback_ip() -> str:
    """A random 127.x.y.z address, away from 127.0.0.1 used by other servers."""
    return f"127.{random.randint(100, 250)}.{random.randint(0, 255)}.{random.randint(2, 254)}"


@dataclass
class ServerProcess:
    proc: subprocess.Popen[str]
    ip: str
    directory: Path
    lines: list[str] = field(default_factory=list)

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if text in line:
                    return line
            if self.proc.poll() is not None:
                time.sleep(0.2)
                raise AssertionError(
                    f"server exited with {self.proc.returncode} before {text!r}:\n" + "".join(self.lines)
                )
            time.sleep(0.05)
        raise AssertionError(f"timeout waiting for {text!r}:\n" + "".join(self.lines))

    def output(self) -> str:
        return "".join(self.lines)


def moxtrio_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "core.cli", *args]


def run_cli(*args: str, stdin: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        moxtrio_cmd(*args), cwd=ROOT, capture_output=True, text=True, input=stdin, timeout=timeout,
        env=child_env(),
    )


def child_env(extra_path: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(ROOT)] + ([extra_path] if extra_path else [])
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


@contextmanager
def running(args: list[str], directory: Path, ip: str, ready: str = "control socket:",
            extra_path: str | None = None, timeout: float = 40.0,
            env: dict[str, str] | None = None) -> Iterator[ServerProcess]:
    """Start ``moxtrio <args>`` (``env``: extra environment), wait until ``ready``
    is logged, stop it after."""
    proc = subprocess.Popen(
        moxtrio_cmd(*args), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**child_env(extra_path), **(env or {})},
    )
    server = ServerProcess(proc=proc, ip=ip, directory=directory)

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            server.lines.append(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        server.wait_for(ready, timeout)
        yield server
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        reader.join(timeout=5)


@contextmanager
def localserve(tmp_path: Path, *extra: str) -> Iterator[ServerProcess]:
    ip = unique_loopback_ip()
    directory = tmp_path / "localserve"
    with running(["localserve", "-dir", str(directory), "-ip", ip, *extra], directory, ip) as server:
        yield server


@contextmanager
def crashing(args: list[str], failpoint: str, extra_path: str | None = None) -> Iterator[subprocess.Popen[str]]:
    """Start ``moxtrio <args>`` with ``failpoint`` enabled and wait until it is ready.

    The test makes the server reach the failpoint (it dies with SIGKILL) and
    checks ``proc.wait()``; a server still running afterwards is killed.
    """
    env = child_env(extra_path)
    env["MOXTRIO_FAILPOINTS"] = failpoint
    proc = subprocess.Popen(moxtrio_cmd(*args), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "control socket:" in line:
                break
        else:
            raise AssertionError("server did not start")
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
