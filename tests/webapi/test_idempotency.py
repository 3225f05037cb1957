"""Idempotent Send (``Idempotency-Key``, a moxtrio extension) over real HTTP.

The crash test runs the server as a child process that kills itself with
SIGKILL after the first Send queued its message and before it answered
(a failpoint), restarts it, and repeats the request with the same key.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from core.accounts import set_password
from core.store.models import to_db_time, utcnow
from plugins.webapi.client import AsyncClient
from plugins.webapi.idempotency import FAILPOINT, HEADER, TABLE, prune
from plugins.webapi.openapi import openapi_document
from plugins.webapi.types import NameAddress, SendRequest
from tests.support.procs import ROOT, child_env, moxtrio_cmd, running, unique_loopback_ip
from tests.suppression.test_webapi_http import add_second_account
from tests.webapi.conftest import AUTH, WebapiServer, add_account_settings, start

LATER = (utcnow() + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
REQ = {"To": [{"Address": "a@example.org"}, {"Address": "b@example.org"}], "Subject": "idem",
       "Text": "once", "FutureRelease": LATER}


async def queued_with_subject(srv: WebapiServer, subject: str) -> int:
    return int(await srv.ctx.store.read(
        lambda c: c.execute("SELECT COUNT(*) FROM queue WHERE subject = ?", (subject,)).fetchone()[0]
    ))


async def test_repeat_with_same_key_returns_first_answer_and_queues_once(srv: WebapiServer) -> None:
    first = await srv.call("Send", REQ, headers={HEADER: "order-17"})
    again = await srv.call("Send", REQ, headers={HEADER: "order-17"})
    assert again == first
    assert len(first["Submissions"]) == 2
    assert await queued_with_subject(srv, "idem") == 2
    # The same JSON encoded differently is the same request.
    reordered = json.dumps(dict(reversed(list(REQ.items()))), indent=2)
    third = await srv.post("Send", raw=reordered, headers={HEADER: "order-17"})
    assert third.status_code == 200 and third.json() == first
    assert await queued_with_subject(srv, "idem") == 2


async def test_without_key_every_send_queues(srv: WebapiServer) -> None:
    a = await srv.call("Send", REQ)
    b = await srv.call("Send", REQ)
    assert a["MessageID"] != b["MessageID"]
    assert await queued_with_subject(srv, "idem") == 4


async def test_same_key_other_request_is_refused(srv: WebapiServer) -> None:
    await srv.call("Send", REQ, headers={HEADER: "k1"})
    code, msg = await srv.error("Send", {**REQ, "Text": "twice"}, headers={HEADER: "k1"})
    assert code == "idempotencyKeyReused"
    assert HEADER in msg
    # An upload that differs makes another request too.
    files = {"attachedfile": ("a.txt", b"one", "text/plain")}
    await srv.call("Send", REQ, headers={HEADER: "k2"}, files=files)
    files2 = {"attachedfile": ("a.txt", b"two", "text/plain")}
    code, _ = await srv.error("Send", REQ, headers={HEADER: "k2"}, files=files2)
    assert code == "idempotencyKeyReused"
    assert await queued_with_subject(srv, "idem") == 4


async def test_error_after_queueing_is_replayed(tmp_path: Path) -> None:
    # A quota too small for the Sent copy: the message is queued, the answer is an error.
    async for s in start(tmp_path, edit_domains=add_account_settings("QuotaMessageSize: 10")):
        req = {**REQ, "SaveSent": True}
        first = await s.error("Send", req, headers={HEADER: "quota"})
        assert first[0] == "sentOverQuota"
        again = await s.error("Send", req, headers={HEADER: "quota"})
        assert again == first
        assert await queued_with_subject(s, "idem") == 2


async def test_keys_are_per_account(tmp_path: Path) -> None:
    async for s in start(tmp_path, edit_domains=add_second_account):
        await set_password(s.ctx, "other", "otherpass")
        mine = await s.call("Send", REQ, headers={HEADER: "shared"})
        theirs = await s.call("Send", {**REQ, "From": [{"Address": "other@localhost"}]},
                              headers={HEADER: "shared"}, auth=("other@localhost", "otherpass"))
        assert theirs["MessageID"] != mine["MessageID"]
        assert await queued_with_subject(s, "idem") == 4


async def test_bad_keys_are_user_errors(srv: WebapiServer) -> None:
    for key in ("x" * 256, "caf\u00e9"):
        r = await srv.http.post(srv.v0 + "Send", data={"request": json.dumps(REQ)}, auth=AUTH,
                                headers=[(HEADER.encode(), key.encode("utf-8"))])
        assert r.status_code == 400
        assert r.json()["Code"] == "user"
    assert await queued_with_subject(srv, "idem") == 0


async def test_error_before_queueing_is_not_remembered(srv: WebapiServer) -> None:
    code, _ = await srv.error("Send", {**REQ, "To": [{"Address": "bad address"}]}, headers={HEADER: "k3"})
    assert code == "badAddress"
    res = await srv.call("Send", REQ, headers={HEADER: "k3"})
    assert len(res["Submissions"]) == 2


async def test_concurrent_requests_with_one_key_queue_once(srv: WebapiServer) -> None:
    results: list[Any] = []

    async def one() -> None:
        results.append(await srv.call("Send", REQ, headers={HEADER: "race"}))

    async with trio.open_nursery() as nursery:
        for _ in range(8):
            nursery.start_soon(one)
    assert len(results) == 8
    assert all(r == results[0] for r in results)
    assert await queued_with_subject(srv, "idem") == 2


async def test_expired_keys_are_pruned_and_queue_again(srv: WebapiServer) -> None:
    first = await srv.call("Send", REQ, headers={HEADER: "old"})
    store = srv.ctx.store
    day_ago = to_db_time(utcnow() - timedelta(hours=25))
    await store.write(lambda c: c.execute(f"UPDATE {TABLE} SET created = ?", (day_ago,)))
    second = await srv.call("Send", REQ, headers={HEADER: "old"})
    assert second["MessageID"] != first["MessageID"]
    assert await queued_with_subject(srv, "idem") == 4
    await store.write(lambda c: c.execute(f"UPDATE {TABLE} SET created = ?", (day_ago,)))
    assert await store.write(lambda c: prune(c, utcnow())) == 1
    assert await store.read(lambda c: c.execute(f"SELECT COUNT(*) FROM {TABLE}").fetchone()[0]) == 0


async def test_python_client_idempotency_key(srv: WebapiServer) -> None:
    async with AsyncClient(srv.v0, *AUTH) as client:
        req = SendRequest(To=[NameAddress(Address="c@example.org")], Subject="idem", Text="client",
                          FutureRelease=None)
        a = await client.send(req, idempotency_key="client-1")
        b = await client.send(req, idempotency_key="client-1")
        assert a == b
        c = await client.send(req)
        assert c.MessageID != a.MessageID


def test_openapi_describes_the_header() -> None:
    op = openapi_document("/webapi/")["paths"]["/v0/Send"]["post"]
    [param] = op["parameters"]
    assert param["name"] == HEADER and param["in"] == "header"
    assert "idempotencyKeyReused" in param["description"]
    other = openapi_document("/webapi/")["paths"]["/v0/SuppressionList"]["post"]
    assert "parameters" not in other


def _count(db: Path, message_id: str) -> int:
    conn = sqlite3.connect(db)
    try:
        return sum(
            conn.execute(f"SELECT COUNT(*) FROM {t} WHERE message_id = ?", (message_id,)).fetchone()[0]
            for t in ("queue", "retired")
        )
    finally:
        conn.close()


@pytest.mark.slow
def test_crash_between_queueing_and_answer_then_retry_queues_once(tmp_path: Path) -> None:
    ip = unique_loopback_ip()
    directory = tmp_path / "ls"
    args = ["localserve", "-dir", str(directory), "-ip", ip]
    env = child_env()
    env["MOXTRIO_FAILPOINTS"] = FAILPOINT
    body = {"request": json.dumps({**REQ, "Subject": "crash once"})}
    url = f"http://{ip}:1080/webapi/v0/Send"
    proc = subprocess.Popen(moxtrio_cmd(*args), cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "control socket:" in line:
                break
        else:
            raise AssertionError("server did not start")
        with pytest.raises(httpx.TransportError):
            httpx.post(url, data=body, auth=AUTH, headers={HEADER: "crash-1"}, timeout=20)
        assert proc.wait(timeout=20) == -9
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    db = directory / "moxtrio.db"
    conn = sqlite3.connect(db)
    [(message_id,)] = conn.execute("SELECT DISTINCT message_id FROM queue WHERE subject = 'crash once'")
    conn.close()
    assert _count(db, message_id) == 2  # queued for both recipients, no answer given

    with running(args[:3], directory, ip):
        r = httpx.post(url, data=body, auth=AUTH, headers={HEADER: "crash-1"}, timeout=20)
        assert r.status_code == 200, r.text
        assert r.json()["MessageID"] == message_id
        assert _count(db, message_id) == 2
        # Without the key the same request is a new message, as in mox.
        r2 = httpx.post(url, data=body, auth=AUTH, timeout=20)
        assert r2.status_code == 200 and r2.json()["MessageID"] != message_id
    assert os.path.exists(db)
