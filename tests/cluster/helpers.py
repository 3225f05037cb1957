"""Parts of the cluster test: node config directories on one PostgreSQL
database, a client load spread over the nodes, and readers of the shared
database."""

from __future__ import annotations

import json
import re
import smtplib
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.reliability.helpers import AUTH, smtp_submit, webapi_send
from tests.support.inproc import localserve_config_dir
from tests.webhooks.helpers import account_edit

#: Recipient domains, all with the sink as MX: the per-domain limit (4 by
#: default, cluster-wide) applies to each.
DOMAINS = [f"d{i}.example.org" for i in range(8)]


def dns_records(sink_host: str) -> dict[str, Any]:
    records: dict[str, Any] = {"mx.example.org": {"A": [sink_host]}}
    for d in DOMAINS:
        records[d] = {"MX": ["10 mx.example.org."]}
    return records


def node_config(tmp_path: Path, db_url: str, sink_port: int, hook_url: str, lease: float) -> tuple[Path, str]:
    """A config dir for one node: its own 127.x address and data dir, the shared database."""
    hooks = account_edit(out_url=hook_url)
    directory, ip = localserve_config_dir(
        tmp_path,
        edit_domains=lambda t: raise_limits(hooks(t)),
        edit_mox=lambda t: t.replace("LogLevel: traceauth", "LogLevel: info"),
    )
    plugins = directory / "plugins"
    plugins.mkdir(exist_ok=True)
    (plugins / "store.yaml").write_text(f"Database:\n  Backend: postgres\n  URL: {db_url}\n")
    (plugins / "queue.yaml").write_text(f"SMTPPort: {sink_port}\n")
    (plugins / "cluster.yaml").write_text(f"LeaseSeconds: {lease}\n")
    (plugins / "webhooks.yaml").write_text("AllowedWebhookNetworks:\n  - 127.0.0.0/8\n")
    return directory, ip


def raise_limits(domains_conf: str) -> str:
    """Account ``mox`` may send thousands of messages to new recipients a day."""
    return domains_conf.replace(
        "\tmox:\n",
        "\tmox:\n\t\tMaxOutgoingMessagesPerDay: 100000000\n\t\tMaxFirstTimeRecipientsPerDay: 100000000\n",
        1,
    )


def node_id(output: str) -> str:
    m = re.search(r"cluster node (\S+) \(", output)
    assert m, "no node id logged"
    return m.group(1)


@dataclass
class Load:
    """Client threads sending ``total`` messages (webapi Send and SMTP
    submission, alternating) round-robin over the nodes that are up.

    A message is acknowledged when Send answered 200 or DATA 250. A request
    cut off by a kill is not acknowledged and never sent again: its subject
    may still arrive (stored, answer lost) but must not arrive twice.
    """

    total: int
    ips: list[str]
    threads_per_kind: int = 3
    acked: list[str] = field(default_factory=list)
    tried: list[str] = field(default_factory=list)
    up: set[str] = field(default_factory=set)
    #: Answers other than success, by kind (a kill's cut connections, refusals).
    failures: Counter[str] = field(default_factory=Counter)
    _next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.up = set(self.ips)

    def _take(self) -> tuple[int, str] | None:
        with self._lock:
            if self._next >= self.total:
                return None
            i = self._next
            self._next += 1
            live = [ip for ip in self.ips if ip in self.up]
            ip = live[i % len(live)]
            self.tried.append(f"c{i}")
            return i, ip

    def _fail(self, what: str) -> None:
        with self._lock:
            self.failures[what] += 1

    def _webapi(self) -> None:
        clients: dict[str, httpx.Client] = {}
        try:
            while (job := self._take()) is not None:
                i, ip = job
                http = clients.setdefault(ip, httpx.Client(timeout=20))
                subject = f"c{i}"
                try:
                    r = webapi_send(http, ip, f"r{i}@{DOMAINS[i % len(DOMAINS)]}", subject)
                except httpx.HTTPError as exc:
                    clients.pop(ip).close()
                    self._fail(f"webapi {type(exc).__name__}")
                    continue
                if r.status_code == 200:
                    with self._lock:
                        self.acked.append(subject)
                else:
                    self._fail(f"webapi {r.status_code} {r.text[:80]}")
        finally:
            for c in clients.values():
                c.close()

    def _smtp(self) -> None:
        conns: dict[str, smtplib.SMTP] = {}
        try:
            while (job := self._take()) is not None:
                i, ip = job
                subject = f"c{i}"
                try:
                    s = conns.get(ip)
                    if s is None:
                        s = conns[ip] = smtplib.SMTP(ip, 1587, timeout=20)
                        s.login(*AUTH)
                    smtp_submit(s, f"r{i}@{DOMAINS[i % len(DOMAINS)]}", subject)
                except (smtplib.SMTPException, OSError) as exc:
                    conns.pop(ip, None)
                    self._fail(f"smtp {type(exc).__name__} {str(exc)[:80]}")
                    continue
                with self._lock:
                    self.acked.append(subject)
        finally:
            for s in conns.values():
                try:
                    s.quit()
                except (smtplib.SMTPException, OSError):
                    pass

    def start(self) -> None:
        for _ in range(self.threads_per_kind):
            self._threads += [threading.Thread(target=self._webapi), threading.Thread(target=self._smtp)]
        for t in self._threads:
            t.start()

    def sent(self) -> int:
        with self._lock:
            return self._next

    def join(self, timeout: float) -> None:
        for t in self._threads:
            t.join(timeout)
        assert not any(t.is_alive() for t in self._threads), "load threads did not finish"


def subject_of(data: bytes) -> str:
    m = re.search(rb"^Subject: (\S+)\r?$", data, re.M)
    return m.group(1).decode() if m else ""


def sink_counts(messages: list[Any]) -> Counter[str]:
    return Counter(subject_of(m.data) for m in messages)


def max_overlap(spans: list[tuple[float, float]]) -> int:
    """The most intervals open at one moment."""
    points = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    cur = best = 0
    for _, d in points:
        cur += d
        best = max(best, cur)
    return best


def db_query(url: str, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return [tuple(r) for r in conn.execute(sql, args).fetchall()]  # type: ignore[arg-type]


def results_errors(results: str) -> list[str]:
    return [r.get("error", "") for r in json.loads(results)]
