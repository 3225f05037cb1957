"""Three moxtrio nodes on one PostgreSQL database, one killed with SIGKILL in
the middle of deliveries and restarted later.

Each node is a ``moxtrio serve`` process on its own 127.x address with its
own data directory; they share only the database. 2000 messages, webapi
Sends and SMTP submissions alternating, are spread over the nodes that are
up. Every node delivers outbound to one independent SMTP sink (aiosmtpd in
its own process; eight recipient domains, all with the sink as MX) and
posts a webhook for every delivery to a receiver in the test.

The kill lands while the victim has deliveries in flight: the sink holds
its replies to DATA (a gate file), the test waits until every message the
sink stored so far has its outcome recorded, and kills the victim, whose
connections then die before their 250: the sink drops those messages (the
client never heard an acceptance). The victim's leases expire, the other
nodes settle its attempts as "outcome unknown" and deliver the messages;
the victim is restarted (a new node id) and takes load again. A kill that
lands between a remote 250 and the commit of its outcome would make such a
message arrive twice (it is retried, as mox retries an attempt with an
unknown outcome); the gate keeps the kill out of that window so the test
can demand exactly once.

At the end: every acknowledged message arrived exactly once at the sink,
nothing arrived twice, the queue and the webhook queue are empty, each
delivery has one webhook ID at the receiver and an ID is posted more than
once only for a webhook whose attempt was interrupted by the kill (its
record says so), and no recipient domain ever had more than its limit of
deliveries at once across the three nodes.
"""

from __future__ import annotations

import signal
from collections import Counter, defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
import trio

from core.dns import NAMESERVERS_ENV
from core.queue.recover import INTERRUPTED
from plugins.webhooks.queue_ops import INTERRUPTED as HOOK_INTERRUPTED
from tests.cluster.helpers import (
    DOMAINS,
    Load,
    db_query,
    dns_records,
    max_overlap,
    node_config,
    node_id,
    results_errors,
    sink_counts,
    subject_of,
)
from tests.support.dnsresponder import DNSResponder
from tests.support.procs import ServerProcess, run_cli, running
from tests.support.smtpsink import open_smtp_sink
from tests.webhooks.helpers import receiver

pytestmark = pytest.mark.slow

TOTAL = 2000
NODES = 3
LEASE = 8.0
PER_DOMAIN = 4  # the queue's default MaxDeliveriesPerDomain
TIMEOUT = 420.0


async def wait_until(what: str, fn: Any, timeout: float, poll: float = 0.2) -> Any:
    """Poll ``fn`` (run in a thread) until it returns something true, bounded."""
    deadline = trio.current_time() + timeout
    while True:
        got = await trio.to_thread.run_sync(fn)
        if got:
            return got
        assert trio.current_time() < deadline, f"timed out waiting for {what}"
        await trio.sleep(poll)


def count(url: str, sql: str, *args: Any) -> int:
    return int(db_query(url, sql, args)[0][0])


async def test_cluster_of_three_survives_kill9_of_one(tmp_path: Path, pg_database: Any) -> None:
    url = pg_database.url
    gate = tmp_path / "gate"
    with trio.fail_after(TIMEOUT):
        async with open_smtp_sink(tmp_path / "sink", gate=str(gate)) as sink, receiver() as rec:
            with DNSResponder(dns_records(sink.host)) as dns, ExitStack() as stack:
                env = {NAMESERVERS_ENV: f"{dns.host}:{dns.port}"}
                configs = [
                    node_config(tmp_path / f"n{i}", url, sink.port, rec.url("/out"), LEASE)
                    for i in range(NODES)
                ]

                def start(i: int) -> ServerProcess:
                    d, ip = configs[i]
                    return stack.enter_context(
                        running(["-config", str(d / "mox.conf"), "serve"], d, ip, env=env)
                    )

                # One after the other: the first applies the plugins' migrations.
                nodes = [await trio.to_thread.run_sync(start, i) for i in range(NODES)]
                pw = run_cli("-config", str(configs[0][0] / "mox.conf"), "setaccountpassword", "mox",
                             stdin="moxmoxmox\n")
                assert pw.returncode == 0, pw.stderr
                ids = [node_id(n.output()) for n in nodes]
                assert len(set(ids)) == NODES

                load = Load(TOTAL, [ip for _, ip in configs])
                load.start()
                try:
                    await wait_until("deliveries under way", lambda: len(sink.messages()) >= 300, 180)
                    victim, vid = nodes[1], ids[1]
                    gate.touch()

                    def victim_in_flight() -> bool:
                        return count(url, "SELECT COUNT(*) FROM queue WHERE lease_node = %s", vid) > 0

                    await wait_until("victim deliveries in flight", victim_in_flight, 60, poll=0.05)
                    stable: list[int] = []

                    def all_stored_recorded() -> bool:
                        stored = len(sink.messages())
                        recorded = count(url, "SELECT COUNT(*) FROM retired WHERE success = 1")
                        stable.append(stored)
                        return stored == recorded and stable[-3:] == [stored] * 3

                    await wait_until("stored deliveries recorded", all_stored_recorded, 60)
                    held = [r[0] for r in db_query(url, "SELECT id FROM queue WHERE lease_node = %s", (vid,))]
                    assert held, "the victim had no delivery in flight"
                    victim.proc.send_signal(signal.SIGKILL)
                    await trio.to_thread.run_sync(lambda: victim.proc.wait(timeout=10))
                    load.up.discard(configs[1][1])
                    gate.unlink()

                    def taken_over() -> bool:
                        return count(url, "SELECT COUNT(*) FROM queue WHERE lease_node = %s", vid) == 0 and (
                            count(url, "SELECT COUNT(*) FROM webhook_queue WHERE lease_node = %s", vid) == 0
                        )

                    await wait_until("takeover of the victim's leases", taken_over, LEASE * 4 + 30)
                    restarted = await trio.to_thread.run_sync(start, 1)
                    nodes.append(restarted)
                    assert node_id(restarted.output()) != vid
                    load.up.add(configs[1][1])
                except BaseException:
                    report(nodes)
                    raise
                finally:
                    await trio.to_thread.run_sync(load.join, 300.0)

                def drained() -> bool:
                    queued = count(url, "SELECT COUNT(*) FROM queue")
                    hooks = count(url, "SELECT COUNT(*) FROM webhook_queue")
                    retired_hooks = count(url, "SELECT COUNT(*) FROM webhook_retired")
                    posted = len({r.header("X-Mox-Webhook-ID") for r in rec.for_path("/out")})
                    return queued == 0 and hooks == 0 and posted >= retired_hooks

                try:
                    await wait_until("queue and webhooks drained", drained, 240, poll=0.5)
                except BaseException:
                    report(nodes)
                    raise
                retired = db_query(url, "SELECT id, success, results, recipient_domain FROM retired")
                hook_rows = db_query(
                    url, "SELECT id, queue_msg_id, outgoing_event, results FROM webhook_retired"
                )
                messages = sink.messages()

    try:
        check(load, messages, retired, hook_rows, held, rec)
    except AssertionError:
        report(nodes)
        raise


def report(nodes: list[ServerProcess]) -> None:
    """What the nodes said that matters when the test fails."""
    words = ("l=error", "l=warn", "Traceback")
    for n in nodes:
        lines = [ln for ln in n.lines if any(w in ln for w in words)]
        print(f"node {n.ip}: {len(lines)} error/warning lines", *lines[:15], sep="\n")


def check(load: Load, messages: list[Any], retired: list[Any], hook_rows: list[Any], held: list[int],
          rec: Any) -> None:
    # -- every acknowledged message exactly once, nothing twice -----------------
    counts = sink_counts(messages)
    twice = {s: n for s, n in counts.items() if n > 1}
    assert not twice, f"{len(twice)} messages delivered twice, e.g. {list(twice.items())[:3]}"
    lost = [s for s in load.acked if counts[s] != 1]
    assert not lost, f"{len(lost)} acknowledged messages not delivered, e.g. {lost[:5]}"
    assert set(counts) <= set(load.tried)
    assert len(load.acked) >= TOTAL - 100, f"only {len(load.acked)} of {TOTAL} acknowledged"
    assert all(success == 1 for _, success, _, _ in retired)
    assert len(retired) == len(messages)

    # -- the victim's deliveries were taken over: interrupted, then delivered ------
    by_id = {rid: results_errors(results) for rid, _, results, _ in retired}
    for rid in held:
        assert rid in by_id, f"queue entry {rid} held by the victim was not delivered"
        assert by_id[rid][0] == INTERRUPTED and by_id[rid][-1] == "", by_id[rid]

    # -- one webhook per delivery; an ID repeated only after an interrupted post ----
    delivered_hooks = Counter(q for _, q, ev, _ in hook_rows if ev == "delivered")
    assert set(delivered_hooks) == set(by_id) and set(delivered_hooks.values()) == {1}
    interrupted_hooks = {str(h) for h, _, _, res in hook_rows if HOOK_INTERRUPTED in res}
    posts = Counter(r.header("X-Mox-Webhook-ID") for r in rec.for_path("/out"))
    ids_by_subject: dict[str, set[str]] = defaultdict(set)
    for r in rec.for_path("/out"):
        if len(r.body) != int(r.header("Content-Length") or 0):
            continue  # the kill cut this request short: not a delivery
        p = r.json()
        if p["Event"] == "delivered":
            ids_by_subject[p["Subject"]].add(r.header("X-Mox-Webhook-ID") or "")
    assert set(ids_by_subject) == set(counts)
    assert all(len(v) == 1 for v in ids_by_subject.values())
    resent = {h: n for h, n in posts.items() if n > 1}
    assert set(resent) <= interrupted_hooks, f"webhooks posted again without an interrupted attempt: {resent}"

    # -- the per-domain limit held across the cluster -----------------------------
    spans: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for m in messages:
        spans[m.rcpt_tos[0].split("@")[1]].append((m.data_start, m.data_end))
    assert set(spans) == set(DOMAINS)
    peaks = {d: max_overlap(s) for d, s in spans.items()}
    assert max(peaks.values()) <= PER_DOMAIN, peaks
    print(
        f"acked {len(load.acked)} of {TOTAL}, delivered {len(messages)}, victim held {len(held)},"
        f" webhook posts {sum(posts.values())} for {len(posts)} ids (resent {len(resent)}),"
        f" peak per-domain concurrency {max(peaks.values())}, load failures {dict(load.failures)},"
        f" subjects e.g. {subject_of(messages[0].data)}"
    )
