"""End to end: mail delivered over SMTP (port 1025) to a running localserve whose DNS is
our local responder publishing the sender's SPF, DKIM key and DMARC policy.

Checks the stored message's headers (Authentication-Results, Received-SPF,
Delivered-To, Return-Path, Received), the incoming webhook's Meta, webapi
MessageGet's Meta, DMARC p=reject, the MAIL FROM domain check, temporary DNS
failures, forged Authentication-Results, and the verdict hook.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from core.dns import Resolver
from core.hookspecs import hookimpl
from core.plugin_api import Rejection
from core.runtime import Server
from tests.dkim.helpers import ed_key, rsa_key, txt_record
from tests.mailauth.test_dkim_verify import dkimpy_sign
from tests.support.dnsresponder import DNSResponder
from tests.support.inproc import localserve_config_dir, running_server
from tests.webhooks.helpers import Receiver, account_edit, receiver

SENDER_KEY = ed_key()
OTHER_KEY = rsa_key()


def txt(value: str) -> str:
    """Zone-file TXT rdata: the value as quoted strings of at most 255 characters."""
    return " ".join(f'"{value[i:i + 255]}"' for i in range(0, len(value), 255))


def zone() -> dict[str, dict[str, list[str]]]:
    return {
        "sender.example": {"A": ["127.0.0.1"], "TXT": [txt("v=spf1 ip4:127.0.0.0/8 -all")]},
        "sel._domainkey.sender.example": {"TXT": [txt(txt_record(SENDER_KEY).decode())]},
        "_dmarc.sender.example": {"TXT": [txt("v=DMARC1; p=reject")]},
        "victim.example": {"A": ["192.0.2.1"]},
        "_dmarc.victim.example": {"TXT": [txt("v=DMARC1; p=none")]},
        "strict.example": {"A": ["192.0.2.2"]},
        "_dmarc.strict.example": {"TXT": [txt("v=DMARC1; p=reject")]},
        "other.example": {"A": ["192.0.2.3"]},
        "sel._domainkey.other.example": {"TXT": [txt(txt_record(OTHER_KEY).decode())]},
        "mxonly.example": {"MX": ["10 mx.mxonly.example."]},
        "mx.mxonly.example": {"A": ["192.0.2.4"]},
        "nullmx.example": {"MX": ["0 ."], "A": ["192.0.2.5"]},
        "flaky.example": {"A": ["127.0.0.1"], "TXT": [txt("v=spf1 ip4:127.0.0.0/8 -all")]},
        "sel._domainkey.flaky.example": {"TXT": [txt(txt_record(SENDER_KEY).decode())]},
        "broken.example": {"A": ["192.0.2.6"]},
    }


@dataclass
class Env:
    server: Server
    rec: Receiver
    dns: DNSResponder
    ip: str

    @property
    def ctx(self) -> Any:
        assert self.server.ctx is not None
        return self.server.ctx

    async def smtp(self, mail_from: str, data: bytes, rcpt: str = "mox@localhost", *,
                   starttls: bool = False) -> tuple[int, bytes]:
        """One transaction; the first refusal (MAIL, RCPT or DATA) or the DATA reply."""

        def run() -> tuple[int, bytes]:
            with smtplib.SMTP(self.ip, 1025, timeout=20) as s:
                s.ehlo("client.sender.example")
                if starttls:
                    ctx = ssl.create_default_context()
                    ctx.check_hostname = False
                    ctx.verify_mode = ssl.CERT_NONE
                    s.starttls(context=ctx)
                    s.ehlo("client.sender.example")
                code, msg = s.mail(mail_from)
                if code != 250:
                    return code, msg
                code, msg = s.rcpt(rcpt)
                if code != 250:
                    return code, msg
                return s.data(data)

        code, msg = await trio.to_thread.run_sync(run)
        return code, re.sub(rb" \([A-Za-z0-9_-]+\)$", b"", msg)  # our replies end in the connection id

    async def stored(self, msg_id: int) -> bytes:
        """The message as stored: prefix headers + file (what MessageRawGet returns)."""
        def read(conn: Any) -> tuple[bytes, str]:
            row = conn.execute("SELECT msg_prefix, file_id FROM messages WHERE id = ?", (msg_id,)).fetchone()
            return bytes(row[0]), str(row[1])
        prefix, file_id = await self.ctx.store.read(read)
        return prefix + self.ctx.store.files.path(file_id).read_bytes()


class Verdicts:
    """A plugin using the authentication verdict hook."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    @hookimpl
    def moxtrio_incoming_authenticated(self, ctx: Any, message: Any) -> Rejection | None:
        self.seen.append(message)
        if message.auth.msg_from_domain == "victim.example":
            return Rejection(550, "5.7.1", "from header not validated")
        message.add_headers.append(f"X-Auth-Seen: spf={message.auth.spf.result}")
        return None


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    with DNSResponder(zone(), servfail_rr=[("flaky.example", "TXT"),
                                           ("sel._domainkey.flaky.example", "TXT"),
                                           ("broken.example", "MX")]) as dns:
        async with receiver() as rec:
            directory, ip = localserve_config_dir(tmp_path, edit_domains=account_edit(in_url=rec.url("/in")))
            resolver = Resolver(dns.nameservers, port=dns.port, timeout=1, lifetime=3)
            async with running_server(directory, resolver=resolver) as server:
                yield Env(server, rec, dns, ip)


def message(from_addr: str, subject: str = "hello") -> bytes:
    return (
        f"From: {from_addr}\r\nTo: mox@localhost\r\nSubject: {subject}\r\n"
        f"Date: Fri, 04 Dec 2026 10:00:00 +0000\r\nMessage-ID: <{subject}@sender.example>\r\n"
        "\r\nhello there\r\n"
    ).encode()


def header(data: bytes, name: str) -> list[str]:
    head = data.split(b"\r\n\r\n", 1)[0].decode()
    fields = re.split(r"\r\n(?![ \t])", head)
    return [re.sub(r"\r\n[ \t]", " ", f.split(":", 1)[1]).strip()
            for f in fields if f.split(":", 1)[0].lower() == name.lower()]


async def webhook_meta(env: Env, n: int) -> dict[str, Any]:
    reqs = await env.rec.wait(n, "/in")
    return dict(reqs[n - 1].json()["Meta"])


async def test_authenticated_message(env: Env) -> None:
    signed = dkimpy_sign(message("Joe <joe@sender.example>"), SENDER_KEY, domain="sender.example")
    assert await env.smtp("joe@sender.example", signed) == (250, b"2.2.0 it is done")
    meta = await webhook_meta(env, 1)
    assert meta["MailFromValidated"] is True
    assert meta["MsgFromValidated"] is True
    assert meta["DKIMVerifiedDomains"] == ["sender.example"]
    data = await env.stored(meta["MsgID"])
    names = [line.split(":", 1)[0] for line in data.split(b"\r\n\r\n")[0].decode().split("\r\n")
             if line and line[0] not in " \t"]
    assert names[:5] == ["Delivered-To", "Return-Path", "Authentication-Results", "Received-SPF", "Received"]
    assert header(data, "Delivered-To") == ["mox@localhost"]
    assert header(data, "Return-Path") == ["<joe@sender.example>"]
    [ar] = header(data, "Authentication-Results")
    assert ar.startswith("localhost; iprev=")
    assert "; dkim=pass (without dnssec) header.d=sender.example header.s=sel header.a=ed25519-sha256 header.b=" in ar
    assert "; spf=pass (without dnssec) smtp.mailfrom=sender.example;" in ar
    assert ar.endswith("dmarc=pass (without dnssec) header.from=sender.example")
    [spf] = header(data, "Received-SPF")
    assert re.fullmatch(r'pass \(domain sender\.example\) client-ip=127\.[0-9.]+; envelope-from="joe@sender\.example"; '
                        r'helo=client\.sender\.example; mechanism="ip4:127\.0\.0\.0/8"; receiver=localhost; identity=mailfrom',
                        spf), spf
    [received] = header(data, "Received")
    assert re.fullmatch(
        r"from client\.sender\.example \((?:localhost )?\[127\.[0-9.]+\]\) by localhost \(\[" + re.escape(env.ip) + r"\]\) "
        r"via tcp with ESMTP id [A-Za-z0-9_-]+ for <mox@localhost>; \d{1,2} \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}",
        received), received
    # The stored size counts the prefix headers; MessageGet reports the same Meta.
    size, prefix_len = await env.ctx.store.read(lambda c: c.execute(
        "SELECT size, length(msg_prefix) FROM messages WHERE id = ?", (meta["MsgID"],)).fetchone())
    assert size == len(data) and prefix_len == len(data) - len(signed)
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.post(f"http://{env.ip}:1080/webapi/v0/MessageGet",
                            data={"request": f'{{"MsgID": {meta["MsgID"]}}}'},
                            auth=("mox@localhost", "moxmoxmox"))
    got = r.json()["Meta"]
    assert (got["MailFromValidated"], got["MsgFromValidated"], got["DKIMVerifiedDomains"]) == (
        True, True, ["sender.example"])
    assert got["Size"] == size


async def test_forged_from_is_not_validated(env: Env) -> None:
    """MAIL FROM and DKIM pass for sender.example, but the From header claims victim.example."""
    signed = dkimpy_sign(message("Boss <boss@victim.example>", "forged"), SENDER_KEY, domain="sender.example")
    assert (await env.smtp("joe@sender.example", signed))[0] == 250
    meta = await webhook_meta(env, 1)
    assert (meta["MailFromValidated"], meta["MsgFromValidated"]) == (True, False)
    assert meta["DKIMVerifiedDomains"] == ["sender.example"]
    data = await env.stored(meta["MsgID"])
    assert header(data, "Authentication-Results")[0].endswith(
        "dmarc=fail (without dnssec) header.from=victim.example")


async def test_dmarc_reject_policy_refuses(env: Env) -> None:
    code, msg = await env.smtp("joe@sender.example", message("ceo@strict.example", "phish"))
    assert (code, msg) == (550, b"5.7.26 rejecting per dmarc policy")
    assert await env.ctx.store.read(lambda c: c.execute("SELECT count(*) FROM messages").fetchone()[0]) == 0


async def test_relaxed_alignment_and_unsigned_spf_only(env: Env) -> None:
    # DKIM by other.example (not aligned), SPF pass for sender.example, From sender.example: SPF aligns.
    signed = dkimpy_sign(message("joe@sender.example", "spfonly"), OTHER_KEY, domain="other.example")
    assert (await env.smtp("joe@sender.example", signed))[0] == 250
    meta = await webhook_meta(env, 1)
    assert (meta["MailFromValidated"], meta["MsgFromValidated"]) == (True, True)
    assert meta["DKIMVerifiedDomains"] == ["other.example"]
    ar = header(await env.stored(meta["MsgID"]), "Authentication-Results")[0]
    assert "dkim=pass (2048 bit rsa, without dnssec) header.d=other.example" in ar


async def test_mail_from_domain_check(env: Env) -> None:
    data = message("x@nowhere.example")
    assert await env.smtp("x@nowhere.example", data) == (550, b"5.7.27 mailfrom domain not configured for mail")
    assert await env.smtp("x@nullmx.example", data) == (550, b"5.7.27 mailfrom domain not configured for mail")
    assert await env.smtp("x@broken.example", data) == (451, b"4.4.0 cannot verify mx records for mailfrom domain")
    # An MX whose host has an address is enough; so is the null sender and localhost in localserve.
    assert (await env.smtp("x@mxonly.example", data))[0] == 250
    assert (await env.smtp("", data))[0] == 250
    assert (await env.smtp("mox@localhost", data))[0] == 250


async def test_temporary_dns_failures_are_temperror(env: Env) -> None:
    signed = dkimpy_sign(message("joe@flaky.example", "flaky"), SENDER_KEY, domain="flaky.example")
    assert (await env.smtp("joe@flaky.example", signed))[0] == 250
    meta = await webhook_meta(env, 1)
    assert (meta["MailFromValidated"], meta["MsgFromValidated"], meta["DKIMVerifiedDomains"]) == (False, False, [])
    data = await env.stored(meta["MsgID"])
    ar = header(data, "Authentication-Results")[0]
    assert "dkim=temperror" in ar and "spf=temperror" in ar
    assert header(data, "Received-SPF")[0].startswith("temperror (domain flaky.example)")


async def test_forged_authentication_results_removed(env: Env) -> None:
    data = (b"Authentication-Results: localhost; spf=pass smtp.mailfrom=bank.example\r\n"
            b"Authentication-Results: (comment) LOCALHOST;\r\n dkim=pass header.d=bank.example\r\n"
            b"Authentication-Results: mx.other.example; spf=fail\r\n") + message("joe@sender.example", "ar")
    assert (await env.smtp("joe@sender.example", data))[0] == 250
    meta = await webhook_meta(env, 1)
    stored = await env.stored(meta["MsgID"])
    ars = header(stored, "Authentication-Results")
    assert len(ars) == 2 and ars[1] == "mx.other.example; spf=fail"
    assert "bank.example" not in stored.decode()
    size = await env.ctx.store.read(lambda c: c.execute(
        "SELECT size FROM messages WHERE id = ?", (meta["MsgID"],)).fetchone()[0])
    assert size == len(stored)


async def test_tls_connection_in_received(env: Env) -> None:
    assert (await env.smtp("joe@sender.example", message("joe@sender.example", "tls"), starttls=True))[0] == 250
    meta = await webhook_meta(env, 1)
    [received] = header(await env.stored(meta["MsgID"]), "Received")
    assert re.search(r" with ESMTPS id \S+ \(TLS1\.[23] TLS_[A-Z0-9_]+\) for <mox@localhost>;", received), received


async def test_localserve_self_delivery_passes(env: Env) -> None:
    """Sent with the webapi to the local account: localserve vouches for localhost itself."""
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.post(f"http://{env.ip}:1080/webapi/v0/Send", auth=("mox@localhost", "moxmoxmox"),
                            data={"request": '{"To": [{"Address": "mox@localhost"}], "Subject": "self", "Text": "hi"}'})
    assert r.status_code == 200, r.text
    meta = await webhook_meta(env, 1)
    data = await env.stored(meta["MsgID"])
    assert (meta["MailFromValidated"], meta["MsgFromValidated"]) == (True, True)
    assert meta["DKIMVerifiedDomains"] == ["localhost"]
    ar = header(data, "Authentication-Results")[0]
    assert re.search(r"; dkim=pass \(without dnssec\) header\.d=localhost header\.s=localserve "
                     r"header\.a=ed25519-sha256 header\.b=\S+ header\.i=mox@localhost;", ar), ar
    assert "; spf=pass (without dnssec) smtp.mailfrom=localhost;" in ar
    assert ar.endswith("dmarc=none (without dnssec) header.from=localhost")
    assert header(data, "Received-SPF")[0].startswith("pass (domain localhost)")


async def test_verdict_hook(tmp_path: Path) -> None:
    plugin = Verdicts()
    with DNSResponder(zone()) as dns:
        directory, ip = localserve_config_dir(tmp_path)
        resolver = Resolver(dns.nameservers, port=dns.port, timeout=1, lifetime=3)
        async with running_server(directory, resolver=resolver,
                                  extra_plugins=[plugin]) as server:
            env = Env(server, Receiver(), dns, ip)
            forged = dkimpy_sign(message("boss@victim.example", "v1"), SENDER_KEY, domain="sender.example")
            assert await env.smtp("joe@sender.example", forged) == (550, b"5.7.1 from header not validated")
            ok = message("joe@sender.example", "v2")
            assert (await env.smtp("joe@sender.example", ok))[0] == 250
            [(msg_id,)] = await env.ctx.store.read(lambda c: c.execute("SELECT id FROM messages").fetchall())
            data = await env.stored(msg_id)
            assert data.startswith(b"X-Auth-Seen: spf=pass\r\nDelivered-To: mox@localhost\r\n")
    assert [m.auth.dmarc.status for m in plugin.seen] == ["fail", "pass"]


async def test_each_recipient_gets_its_own_delivery_headers(env: Env) -> None:
    data = message("joe@sender.example", "two")

    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP(env.ip, 1025, timeout=20) as s:
            return s.sendmail("joe@sender.example", ["mox@localhost", "other@localhost"], data)

    assert await trio.to_thread.run_sync(send) == {}
    rows = await env.ctx.store.read(lambda c: c.execute(
        "SELECT id, size, rcpt_to_localpart FROM messages ORDER BY id").fetchall())
    assert [r[2] for r in rows] == ["mox", "other"]
    for (msg_id, size, localpart) in rows:
        stored = await env.stored(msg_id)
        assert size == len(stored)
        assert header(stored, "Delivered-To") == [f"{localpart}@localhost"]
        assert header(stored, "Received")[0].split(" for ")[1].startswith(f"<{localpart}@localhost>;")
        assert header(stored, "Authentication-Results")[0].endswith("dmarc=pass (without dnssec) header.from=sender.example")
