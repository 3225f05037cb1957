"""Submission over SMTP to a (non-localserve) server, delivered by the queue
through an MX lookup (local DNS responder) to an independent SMTP server in
its own process (aiosmtpd), with STARTTLS; and a 5xx coming back as a DSN."""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from core.accounts import set_password
from core.dns import Resolver
from core.message.dsn import parse_dsn
from core.runtime import Server
from tests.smtp_e2e.conftest import in_thread, wait_rows
from tests.support.dnsresponder import DNSResponder
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.smtpsink import SMTPSink, make_self_signed_cert, open_smtp_sink


@dataclass
class Env:
    server: Server
    sink: SMTPSink
    ip: str


@asynccontextmanager
async def mx_env(tmp_path: Path, *, starttls: bool = True, **sink_kw: Any) -> AsyncIterator[Env]:
    """A non-localserve server whose queue reaches ``example.org`` through its MX,
    ``mx.example.org``, an aiosmtpd sink (with STARTTLS unless ``starttls`` is false)."""
    if starttls:
        cert, key = make_self_signed_cert(tmp_path / "sinkcert")
        sink_kw.update(certfile=cert, keyfile=key)
    async with open_smtp_sink(tmp_path / "sink", starttls=starttls, **sink_kw) as sink:
        directory, ip = localserve_config_dir(tmp_path)
        (directory / "plugins").mkdir()
        (directory / "plugins" / "queue.yaml").write_text(f"SMTPPort: {sink.port}\n")
        with DNSResponder({"example.org": {"MX": ["10 mx.example.org."]},
                           "mx.example.org": {"A": [sink.host]}}) as dns:
            resolver = Resolver(dns.nameservers, port=dns.port, lifetime=3)
            # Not localserve: the queue delivers through MX like a real MTA.
            async with running_server(directory, localserve=False, resolver=resolver) as srv:
                await set_password(srv.ctx, "mox", "moxmoxmox")  # type: ignore[arg-type]
                yield Env(srv, sink, ip)


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with mx_env(tmp_path, rcpt_replies={"nobody@example.org": "550 5.1.1 no such user here"}) as e:
        yield e


def submit(ip: str, rcpts: list[str]) -> None:
    with smtplib.SMTP(ip, 1587, timeout=10) as s:
        s.login("mox@localhost", "moxmoxmox")
        s.sendmail("mox@localhost", rcpts, b"From: mox@localhost\r\nSubject: via mx\r\n\r\nhello mx\r\n")


async def test_submission_delivered_through_mx_with_starttls(env: Env) -> None:
    await in_thread(lambda: submit(env.ip, ["someone@example.org"]))
    with trio.fail_after(15):
        while not env.sink.messages():
            await trio.sleep(0.05)
    got = env.sink.messages()[0]
    assert got.rcpt_tos == ["someone@example.org"] and got.mail_from == "mox@localhost"
    assert got.tls and got.tls_version is not None
    assert b"hello mx" in got.data and b"Subject: via mx" in got.data
    rows = await wait_rows(env.server, "select success from retired")
    assert rows[0][0] == 1


async def test_per_recipient_5xx_gives_failure_dsn_while_others_deliver(env: Env) -> None:
    await in_thread(lambda: submit(env.ip, ["someone@example.org", "nobody@example.org"]))
    rows = await wait_rows(env.server, "select recipient_localpart, success from retired order by recipient_localpart", n=2)
    assert [tuple(r) for r in rows] == [("nobody", 0), ("someone", 1)]
    dsn_rows = await wait_rows(env.server, "select file_id, msg_prefix from messages where account = 'mox'")
    file_id, prefix = dsn_rows[0]
    ctx = env.server.ctx
    assert ctx is not None
    dsn = parse_dsn(bytes(prefix) + ctx.store.files.path(file_id).read_bytes())
    assert dsn is not None
    rcpt = dsn.recipients[0]
    assert rcpt.action == "failed" and rcpt.status == "5.1.1"
    assert "no such user here" in rcpt.diagnostic_code
