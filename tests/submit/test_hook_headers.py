"""Submission hooks may change the message: header fields a plugin adds are in the
delivered message and covered by its DKIM signature; fields it removes are gone.

Both front ends (SMTP submission, webapi Send) go through the same path; the
message is delivered by localserve to the mox account, read back from the
store and verified with dkimpy against the server's own DKIM key.
"""

from __future__ import annotations

import json
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from moxtrio import PluginContext, hookimpl
from tests.dkim.helpers import Verifier, signature_headers, tags, txt_from_file
from tests.smtp_e2e.conftest import wait_rows
from tests.support.inproc import localserve_config_dir, running_server


class CampaignPlugin:
    """Tags every submission with X-Campaign and drops X-Internal, as a plugin author would."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    @hookimpl
    def moxtrio_submission(self, ctx: PluginContext, submission: Any) -> None:
        self.seen.append(submission.source)
        submission.add_header("X-Campaign", f"spring-{submission.source}")
        submission.remove_header("x-internal")


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[Any, str, Path, CampaignPlugin]]:
    directory, ip = localserve_config_dir(tmp_path)
    plugin = CampaignPlugin()
    async with running_server(directory, extra_plugins=[plugin]) as server:
        yield server, ip, directory, plugin


def smtp_send(ip: str) -> None:
    data = b"From: mox@localhost\r\nTo: mox@localhost\r\nX-Internal: secret\r\nSubject: hi\r\n\r\nbody\r\n"
    with smtplib.SMTP(ip, 1587, timeout=20) as s:
        s.login("mox@localhost", "moxmoxmox")
        s.sendmail("mox@localhost", ["mox@localhost"], data)


async def webapi_send(ip: str) -> None:
    req = {"To": [{"Address": "mox@localhost"}], "Subject": "hi", "Text": "body",
           "Headers": [["X-Internal", "secret"]]}
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.post(f"http://{ip}:1080/webapi/v0/Send", data={"request": json.dumps(req)},
                            auth=("mox@localhost", "moxmoxmox"))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("front_end", ["smtp", "webapi"])
async def test_added_header_is_delivered_and_signed(
    running: tuple[Any, str, Path, CampaignPlugin], front_end: str
) -> None:
    server, ip, directory, plugin = running
    if front_end == "smtp":
        await trio.to_thread.run_sync(smtp_send, ip)
    else:
        await webapi_send(ip)
    rows = await wait_rows(server, "select file_id, msg_prefix from messages where mailbox_id in "
                                   "(select id from mailboxes where name = 'Inbox')")
    file_id, prefix = rows[0]
    data = bytes(prefix or b"") + server.ctx.store.files.path(file_id).read_bytes()
    head = data.split(b"\r\n\r\n", 1)[0]
    assert plugin.seen == [front_end]
    assert f"\r\nX-Campaign: spring-{front_end}\r\n".encode() in head
    assert b"x-internal" not in head.lower()
    sigs = signature_headers(data)
    assert len(sigs) == 1
    assert "x-campaign" in tags(sigs[0])["h"].lower().split(":")
    verifier = Verifier({"localserve._domainkey.localhost": txt_from_file(directory / "dkim.localserve.privatekey.pkcs8.pem")})
    assert verifier.results(data) == [True]
    # Changing the added field breaks the signature: it is really covered.
    tampered = data.replace(f"X-Campaign: spring-{front_end}".encode(), b"X-Campaign: autumn-xxxx", 1)
    assert verifier.results(tampered) == [False]
