"""A private PostgreSQL cluster for the tests: initdb + pg_ctl in a temp directory.

The cluster listens on a loopback address of its own (a random 127.x.y.z and
a free port) and on a unix socket in its directory, trusts local connections
(it is reachable only from this machine, for the length of the test session)
and runs with ``fsync=off``: the tests exercise the store's commit protocol,
not the disk's, and turning fsync off makes CREATE DATABASE and commits fast
on a shared CI machine. It is stopped and removed at the end of the session.

initdb refuses to run as root: as root the cluster runs as the ``postgres``
user Debian's package creates (through ``runuser``); otherwise as the
current user. Missing binaries fail with a message saying what to install —
the PostgreSQL tests are never skipped.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from tests.support.procs import unique_loopback_ip

SUPERUSER = "moxtrio"


class PostgresMissing(RuntimeError):
    pass


def find_bindir() -> Path:
    """The directory holding initdb and pg_ctl (PATH first, then Debian's layout)."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True):
        if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
            return Path(d)
    raise PostgresMissing(
        "PostgreSQL server binaries (initdb, pg_ctl) not found: install PostgreSQL"
        " (Debian: apt-get install -y postgresql) to run the PostgreSQL tests"
    )


def _free_port(ip: str) -> int:
    with socket.socket() as s:
        s.bind((ip, 0))
        return int(s.getsockname()[1])


class PgCluster:
    """One running cluster; ``url(db)`` gives a connection URL for a database in it."""

    def __init__(self, *, fsync: bool = False) -> None:
        """``fsync=True`` for benchmarks, where the commit's flush is part of the cost."""
        self.fsync = fsync
        self.bindir = find_bindir()
        self.dir = Path(tempfile.mkdtemp(prefix="moxtrio-pg-"))
        self.datadir = self.dir / "data"
        self.host = unique_loopback_ip()
        self.port = _free_port(self.host)
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                pw = pwd.getpwnam("postgres")
            except KeyError as exc:
                raise PostgresMissing(
                    "running as root needs the 'postgres' user to run the test cluster"
                    " (Debian's postgresql package creates it)"
                ) from exc
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as_user = ["runuser", "-u", "postgres", "--"]
        self._lock = threading.Lock()
        self._started = False

    def _run(self, args: Sequence[str], timeout: float = 120) -> None:
        proc = subprocess.run(
            [*self._as_user, *args], capture_output=True, text=True, timeout=timeout, cwd=self.dir
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")

    def start(self) -> PgCluster:
        self._run([
            str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", SUPERUSER, "-A", "trust",
            "-E", "UTF8", "--locale=C", "--no-sync",
        ])
        opts = " ".join([
            f"-c listen_addresses={self.host}", f"-p {self.port}",
            f"-c unix_socket_directories={self.dir}",
            "-c fsync=on -c full_page_writes=on" if self.fsync else "-c fsync=off -c full_page_writes=off",
            "-c synchronous_commit=on", "-c max_connections=400", "-c shared_buffers=32MB",
            "-c log_min_messages=warning", "-c log_min_error_statement=panic",
        ])
        self._run([
            str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-l", str(self.dir / "server.log"),
            "-o", opts, "-w", "-t", "60", "start",
        ])
        self._started = True
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}/{database}"

    def admin(self, *statements: str) -> None:
        """Run statements (each on its own, autocommit) in the ``postgres`` database."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            for s in statements:
                conn.execute(s)  # type: ignore[arg-type]

    def create_database(self, template: str | None = None) -> str:
        """A new empty database (optionally a copy of ``template``); returns its name."""
        name = f"t_{secrets.token_hex(6)}"
        clause = f" TEMPLATE {template}" if template else ""
        with self._lock:  # CREATE DATABASE ... TEMPLATE needs the template idle
            self.admin(f"CREATE DATABASE {name}{clause}")
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self._run([str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])
            finally:
                shutil.rmtree(self.dir, ignore_errors=True)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
