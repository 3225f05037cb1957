"""DKIM end to end: an in-process localserve signs what SMTP submission and webapi
Send queue; the queued message (MsgPrefix + stored file) is verified by dkimpy
against public keys derived from the server's key files."""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from core.runtime import Server
from core.store.messages import list_messages
from tests.dkim.helpers import (
    Verifier,
    rsa_key,
    signature_headers,
    tags,
    txt_from_file,
    write_mox_key,
)
from tests.support.inproc import localserve_config_dir, running_server

AUTH = ("mox@localhost", "moxmoxmox")
LS_KEY = "dkim.localserve.privatekey.pkcs8.pem"
RSA_KEY = "rsa2024.pem"


def with_rsa_selector(text: str) -> str:
    """Sign with a second, RSA, relaxed/relaxed selector after localserve's ed25519 one."""
    sel = (
        "\t\t\t\trsa2024:\n\t\t\t\t\tCanonicalization:\n\t\t\t\t\t\tHeaderRelaxed: true\n"
        "\t\t\t\t\t\tBodyRelaxed: true\n\t\t\t\t\tExpiration: 24h\n"
        f"\t\t\t\t\tPrivateKeyFile: {RSA_KEY}\n"
    )
    assert "\t\t\tSelectors:\n" in text and "\t\t\t\t- localserve\n" in text
    text = text.replace("\t\t\tSelectors:\n", "\t\t\tSelectors:\n" + sel, 1)
    return text.replace("\t\t\t\t- localserve\n", "\t\t\t\t- localserve\n\t\t\t\t- rsa2024\n", 1)


@dataclass
class Env:
    server: Server
    ip: str
    directory: Path
    http: httpx.AsyncClient

    @property
    def ctx(self) -> Any:
        assert self.server.ctx is not None
        return self.server.ctx

    def verifier(self) -> Verifier:
        return Verifier({
            "localserve._domainkey.localhost": txt_from_file(self.directory / LS_KEY),
            "rsa2024._domainkey.localhost": txt_from_file(self.directory / RSA_KEY),
        })

    async def queued(self, n: int) -> list[bytes]:
        """The first ``n`` queued messages as they would be sent (bounded wait)."""
        queue = self.ctx.queue
        store = self.ctx.store
        with trio.fail_after(10):
            while True:
                ids = await store.read(lambda c: [r[0] for r in c.execute("select id from queue order by id")])
                if len(ids) >= n:
                    return [await queue.open_message(i) for i in ids]
                await trio.sleep(0.05)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    directory, ip = localserve_config_dir(tmp_path, edit_domains=with_rsa_selector)
    write_mox_key(directory / RSA_KEY, rsa_key())
    async with running_server(directory) as server, httpx.AsyncClient(timeout=20) as http:
        yield Env(server, ip, directory, http)


def submit_held(ip: str, rcpts: list[str], data: bytes) -> dict[str, Any]:
    """Submit with FUTURERELEASE (HOLDFOR) so the message stays in the queue."""
    with smtplib.SMTP(ip, 1587, timeout=20) as s:
        s.login(*AUTH)
        return s.sendmail("mox@localhost", rcpts, data, mail_options=["HOLDFOR=3600"])


def header_names(data: bytes) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    return [line.split(":", 1)[0] for line in head.split("\r\n") if line and not line[0].isspace()]


async def send(env: Env, req: dict[str, Any]) -> httpx.Response:
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = json.dumps({"FutureRelease": later, **req})
    return await env.http.post(f"http://{env.ip}:1080/webapi/v0/Send", data={"request": body}, auth=AUTH)


async def test_smtp_submission_is_signed_with_every_selector(env: Env) -> None:
    msg = b"From: Mox <mox+tag@localhost>\r\nTo: a@example.org\r\nSubject: hi\r\n\r\nhello  \r\nworld\r\n"
    refused = await trio.to_thread.run_sync(lambda: submit_held(env.ip, ["a@example.org", "b@example.org"], msg))
    assert refused == {}
    first, second = await env.queued(2)
    for data in (first, second):
        assert env.verifier().results(data) == [True, True]
        # mox's prefix order: Received, added Message-Id/Date, DKIM-Signature(s), Authentication-Results.
        assert header_names(data)[:6] == [
            "Received", "Message-Id", "Date", "DKIM-Signature", "DKIM-Signature", "Authentication-Results",
        ]
    ed, rsa = (tags(h) for h in signature_headers(first))
    assert (ed["s"], ed["a"], rsa["s"], rsa["a"]) == ("localserve", "ed25519-sha256", "rsa2024", "rsa-sha256")
    # i= is the canonical From localpart (catchall suffix removed).
    assert ed["i"] == rsa["i"] == "mox@localhost" and ed["d"] == "localhost"
    # localserve's selector has no Canonicalization: simple/simple, as mox; x= from Expiration.
    assert "c" not in ed and rsa["c"] == "relaxed/relaxed"
    assert int(ed["x"]) - int(ed["t"]) == 72 * 3600 and int(rsa["x"]) - int(rsa["t"]) == 24 * 3600
    # Message-Id/Date added by submission are covered by the signature.
    assert ed["h"].split(":").count("Message-Id") == 2 and ed["h"].split(":").count("Date") == 2
    # Both recipients share one signature (a byte-identical prefix after Received).
    assert first.split(b"DKIM-Signature", 1)[1] == second.split(b"DKIM-Signature", 1)[1]


async def test_smtp_signing_failure_sends_unsigned(env: Env) -> None:
    (env.directory / RSA_KEY).unlink()  # the second selector can no longer sign
    msg = b"From: mox@localhost\r\nTo: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n"
    assert await trio.to_thread.run_sync(lambda: submit_held(env.ip, ["a@example.org"], msg)) == {}
    [data] = await env.queued(1)
    assert b"DKIM-Signature" not in data
    assert header_names(data)[:4] == ["Received", "Message-Id", "Date", "Authentication-Results"]


async def test_webapi_send_is_signed(env: Env) -> None:
    r = await send(env, {"From": [{"Address": "mox+news@localhost"}],
                         "To": [{"Address": "a@example.org"}, {"Address": "b@example.org"}],
                         "Subject": "hello", "Text": "hi ☺\n" + "line of text\n" * 50})
    assert r.status_code == 200, r.text
    first, second = await env.queued(2)
    for data in (first, second):
        assert env.verifier().results(data) == [True, True]
        assert header_names(data)[:4] == ["Received", "DKIM-Signature", "DKIM-Signature", "From"]
    ed, rsa = (tags(h) for h in signature_headers(first))
    # Webapi: i= is the From localpart as is.
    assert ed["i"] == rsa["i"] == "mox+news@localhost"
    assert first.split(b"DKIM-Signature", 1)[1] == second.split(b"DKIM-Signature", 1)[1]
    # The queue's Size counts the signatures in the prefix.
    entry = await env.ctx.queue.get(
        (await env.ctx.store.read(lambda c: c.execute("select min(id) from queue").fetchone()))[0]
    )
    assert entry.size == len(first)


async def test_webapi_large_send_is_signed(env: Env) -> None:
    r = await send(env, {"To": [{"Address": "a@example.org"}], "Subject": "big",
                         "Text": ("x" * 70 + "  \n") * 3000})
    assert r.status_code == 200, r.text
    [data] = await env.queued(1)
    assert len(data) > 64 * 1024
    assert env.verifier().results(data) == [True, True]


async def test_webapi_signing_failure_is_a_server_error(env: Env) -> None:
    (env.directory / RSA_KEY).write_bytes(b"not a key")
    r = await send(env, {"To": [{"Address": "a@example.org"}], "Text": "x"})
    assert r.status_code == 400
    d = r.json()
    assert d["Code"] == "server"
    assert re.match(r"sign dkim: loading dkim private key .*rsa2024\.pem", d["Message"]), d
    assert await env.ctx.store.read(lambda c: c.execute("select count(*) from queue").fetchone()[0]) == 0


async def test_webapi_sent_copy_has_bcc_then_signatures(env: Env) -> None:
    r = await send(env, {"To": [{"Address": "a@example.org"}], "BCC": [{"Address": "hidden@example.org"}],
                         "Text": "keep", "SaveSent": True})
    assert r.status_code == 200, r.text
    queued = (await env.queued(2))[0]
    [sent] = await env.ctx.store.read(lambda c: list_messages(c, "mox", "Sent"))
    raw = sent.msg_prefix + await env.ctx.store.files.read(sent.file_id)
    assert header_names(raw)[:4] == ["Bcc", "DKIM-Signature", "DKIM-Signature", "From"]
    assert b"Received:" not in raw
    # Same signatures as the queued copy (which has no Bcc header).
    assert signature_headers(raw) == signature_headers(queued)
