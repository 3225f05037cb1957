"""Two moxtrio nodes on one PostgreSQL database, as child processes: a Send
on one node is delivered by the other without waiting for a poll, and hold
rules and suppressions added on one node apply to Sends on the other."""

from __future__ import annotations

import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from core.dns import NAMESERVERS_ENV
from tests.cluster.helpers import db_query, dns_records, node_config
from tests.reliability.helpers import AUTH
from tests.support.dnsresponder import DNSResponder
from tests.support.procs import run_cli, running
from tests.support.smtpsink import open_smtp_sink
from tests.webhooks.helpers import receiver

pytestmark = pytest.mark.slow


def send(ip: str, rcpt: str, subject: str) -> httpx.Response:
    req = {"To": [{"Address": rcpt}], "Subject": subject, "Text": "two nodes\n"}
    return httpx.post(f"http://{ip}:1080/webapi/v0/Send", data={"request": json.dumps(req)}, auth=AUTH, timeout=20)


async def test_other_node_delivers_and_sees_rules(tmp_path: Path, pg_database: Any) -> None:
    url = pg_database.url
    async with open_smtp_sink(tmp_path / "sink") as sink, receiver() as rec:
        with DNSResponder(dns_records(sink.host)) as dns, ExitStack() as stack:
            env = {NAMESERVERS_ENV: f"{dns.host}:{dns.port}"}
            a_dir, a_ip = node_config(tmp_path / "a", url, sink.port, rec.url("/out"), 30.0)
            b_dir, b_ip = node_config(tmp_path / "b", url, sink.port, rec.url("/out"), 30.0)
            # Node A accepts mail but never delivers: whatever reaches the
            # sink was delivered by B, which idles until something wakes it.
            (a_dir / "plugins" / "queue.yaml").write_text(f"SMTPPort: {sink.port}\nMaxDeliveries: 0\n")
            nodes = []
            for d, ip in ((a_dir, a_ip), (b_dir, b_ip)):
                nodes.append(await trio.to_thread.run_sync(
                    lambda d=d, ip=ip: stack.enter_context(
                        running(["-config", str(d / "mox.conf"), "serve"], d, ip, env=env)
                    )
                ))
            a_conf = str(a_dir / "mox.conf")
            assert run_cli("-config", a_conf, "setaccountpassword", "mox", stdin="moxmoxmox\n").returncode == 0

            # The second Send comes once B listens for sure (it delivered the
            # first) and idles: only the notification from A's commit wakes it.
            for n, who in enumerate(("first", "second"), start=1):
                r = await trio.to_thread.run_sync(send, a_ip, f"{who}@d0.example.org", who)
                assert r.status_code == 200, r.text
                with trio.fail_after(30):
                    while len(sink.messages()) < n:
                        await trio.sleep(0.05)
            delivered = [["first@d0.example.org"], ["second@d0.example.org"]]
            assert [m.rcpt_tos for m in sink.messages()] == delivered
            assert not any("delivered" in ln and "pkg=queue" in ln for ln in nodes[0].lines)

            # A hold rule added on A holds a Send made on B.
            added = run_cli("-config", a_conf, "queue", "holdrules", "add", "-recipientdom", "d1.example.org")
            assert added.returncode == 0, added.stderr
            r = await trio.to_thread.run_sync(send, b_ip, "held@d1.example.org", "held")
            assert r.status_code == 200, r.text
            held = db_query(url, "SELECT hold FROM queue WHERE recipient_localpart = 'held'")
            assert held == [(1,)]

            # A suppression added on A stops B's delivery to that address.
            sup = run_cli("-config", a_conf, "queue", "suppress", "add", "mox", "gone@d2.example.org")
            assert sup.returncode == 0, sup.stderr
            r = await trio.to_thread.run_sync(send, b_ip, "gone@d2.example.org", "gone")
            assert r.status_code == 200, r.text
            with trio.fail_after(30):
                while not db_query(url, "SELECT 1 FROM retired WHERE recipient_localpart = 'gone'"):
                    await trio.sleep(0.1)
            [(success, results)] = db_query(
                url, "SELECT success, results FROM retired WHERE recipient_localpart = 'gone'"
            )
            assert success == 0 and "suppression list" in results
            assert [m.rcpt_tos for m in sink.messages()] == delivered
