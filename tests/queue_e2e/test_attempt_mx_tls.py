"""Each delivery attempt records the MX host dialed and whether it ran over TLS.

A message is submitted to a (non-localserve) server and delivered through an
MX lookup to an aiosmtpd sink in its own process, once with STARTTLS and once
in plaintext. The attempt's host and TLS flag must be stored with the result,
shown by the admin API (``MXHost``/``TLS`` beside mox's fields) and in the
admin page's attempt table, while the ``queue retired print`` JSON keeps
mox's exact result shape.
"""

from __future__ import annotations

import json
import re
import smtplib
from pathlib import Path

import httpx
import pytest
import trio

from core.queue.jsonfmt import retired_json
from core.store import queue_rows
from tests.queue_e2e.test_smtp_to_mx import mx_env
from tests.smtp_e2e.conftest import in_thread, wait_rows
from tests.webui.conftest import ADMIN_PASSWORD, Sherpa

MOX_RESULT_KEYS = ["Start", "Duration", "Success", "Code", "Secode", "Error"]


def _submit(ip: str) -> None:
    with smtplib.SMTP(ip, 1587, timeout=10) as s:
        s.login("mox@localhost", "moxmoxmox")
        s.sendmail("mox@localhost", ["someone@example.org"],
                   b"From: mox@localhost\r\nSubject: attempts\r\n\r\nhello\r\n")


@pytest.mark.parametrize("starttls", [True, False], ids=["starttls", "plaintext"])
async def test_attempt_records_mx_host_and_tls(tmp_path: Path, starttls: bool) -> None:
    async with mx_env(tmp_path, starttls=starttls) as env:
        srv, sink, ip = env.server, env.sink, env.ip
        await in_thread(lambda: _submit(ip))
        rows = await wait_rows(srv, "select id, results from retired where success = 1")
        with trio.fail_after(10):
            while not sink.messages():
                await trio.sleep(0.05)
        assert sink.messages()[0].tls is starttls

        # Stored durably with the result.
        msg_id, results = rows[0]
        stored = json.loads(results)[-1]
        assert stored["mxhost"] == "mx.example.org"
        assert stored.get("tls", False) is starttls

        # The admin API: mox's fields first, then ours.
        async with httpx.AsyncClient(timeout=20) as http:
            a = Sherpa(http, f"http://{ip}:1080/admin/")
            await a.login(ADMIN_PASSWORD)
            retired = await a.call("RetiredList", {"IDs": [msg_id]}, {})
            attempt = retired[0]["Results"][-1]
            assert list(attempt) == [*MOX_RESULT_KEYS, "MXHost", "TLS"]
            assert attempt["MXHost"] == "mx.example.org" and attempt["TLS"] is starttls
            assert attempt["Success"] is True and attempt["Code"] == 250

            # The admin page's attempt table.
            r = await http.get(f"http://{ip}:1080/admin/retired/{msg_id}")
            assert r.status_code == 200
            row = re.search(r'<td class="mxhost">([^<]*)</td>\s*<td class="tls">(.*?)</td>', r.text)
            assert row is not None, r.text
            assert row.group(1) == "mx.example.org"
            assert ("yes" in row.group(2)) is starttls and ("no" in row.group(2)) is not starttls
            assert "<th>MX host</th><th>TLS</th>" in r.text

        # The queue commands' JSON keeps mox's shape.
        entry = await srv.ctx.store.read(  # type: ignore[union-attr]
            lambda c: queue_rows.get_retired(c, msg_id))
        assert list(retired_json(entry)["Results"][-1]) == MOX_RESULT_KEYS
