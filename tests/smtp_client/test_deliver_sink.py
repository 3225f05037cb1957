"""core.delivery.client.deliver against an independent SMTP server (aiosmtpd in
its own process, see tests/support/smtpsink.py)."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Any

import trio

from core.delivery.client import DeliveryResult, deliver
from core.dns import Resolver
from tests.support.smtpsink import SMTPSink

MSG = (
    b"From: <sender@moxtrio.example>\r\n"
    b"To: <rcpt@sink.example>\r\n"
    b"Subject: hello\r\n"
    b"Message-Id: <test1@moxtrio.example>\r\n"
    b"\r\n"
    b"Hello there.\r\n"
)


async def send(sink: SMTPSink, recipients: list[str], data: Any = MSG, **kw: Any) -> DeliveryResult:
    args: dict[str, Any] = dict(
        host="localhost",
        ips=[sink.host],
        port=sink.port,
        ehlo_name="moxtrio.example",
        mail_from="sender@moxtrio.example",
        recipients=recipients,
        data=data,
        read_timeout=10,
    )
    args.update(kw)
    with trio.fail_after(30):
        return await deliver(**args)


async def test_success_single_recipient(sink: SMTPSink) -> None:
    res = await send(sink, ["rcpt@sink.example"])
    assert res.error == "" and res.all_ok and res.connected
    [r] = res.recipients
    assert (r.recipient, r.ok, r.code, r.secode, r.error) == (
        "rcpt@sink.example",
        True,
        250,
        "1.5",
        "",
    )
    assert r.enhanced_code == "2.1.5"
    assert res.ip == "127.0.0.1" and res.dialed_ips == ["127.0.0.1"]
    assert not res.tls
    [m] = sink.messages()
    assert m.data == MSG
    assert m.mail_from == "sender@moxtrio.example"
    assert m.rcpt_tos == ["rcpt@sink.example"]
    assert f"SIZE={len(MSG)}" in m.mail_options and "BODY=7BIT" in m.mail_options
    assert m.ehlo == "moxtrio.example" and not m.tls


async def test_mixed_recipient_results(sink_factory: Any) -> None:
    async with sink_factory(
        rcpt_replies={
            "gone@sink.example": "550 5.1.1 no such user",
            "later@sink.example": "451 4.2.0 mailbox busy",
            "full@sink.example": "552 5.2.2 too many recipients",
        }
    ) as sink:
        rcpts = [
            "ok1@sink.example",
            "gone@sink.example",
            "later@sink.example",
            "full@sink.example",
            "ok2@sink.example",
        ]
        res = await send(sink, rcpts)
        addr = f"127.0.0.1:{sink.port}"
        assert res.error == ""
        ok1, gone, later, full, ok2 = res.recipients
        assert ok1.ok and ok2.ok and ok1.code == 250
        assert (gone.ok, gone.permanent, gone.code, gone.secode) == (False, True, 550, "1.1")
        assert gone.enhanced_code == "5.1.1"
        # mox's phrasing for a pipelined RCPT rejection, said once (mox repeats it).
        assert gone.error == (
            f"delivering message to {addr}: permanent: 550 5.1.1 no such user"
        )
        assert (later.ok, later.permanent, later.code, later.secode) == (False, False, 451, "2.0")
        assert later.error.endswith("transient: 451 4.2.0 mailbox busy")
        # 552 at RCPT is temporary (RFC 5321 §4.5.3.1.10).
        assert (full.ok, full.permanent, full.code) == (False, False, 552)
        [m] = sink.messages()
        assert m.rcpt_tos == ["ok1@sink.example", "ok2@sink.example"]


async def test_all_recipients_rejected_get_their_own_reply(sink_factory: Any) -> None:
    async with sink_factory(
        rcpt_replies={"a@sink.example": "550 5.1.1 no a", "b@sink.example": "450 4.1.1 later b"}
    ) as sink:
        res = await send(sink, ["a@sink.example", "b@sink.example"])
        a, b = res.recipients
        assert (a.permanent, a.code, a.line) == (True, 550, "550 5.1.1 no a")
        assert (b.permanent, b.code, b.line) == (False, 450, "450 4.1.1 later b")
        assert sink.messages() == []


async def test_rcpt_rejection_without_pipelining_uses_status_text(sink_factory: Any) -> None:
    async with sink_factory(
        pipelining=False, rcpt_replies={"gone@sink.example": "550 5.1.1 nope"}
    ) as sink:
        res = await send(sink, ["gone@sink.example", "ok@sink.example"])
        gone, ok = res.recipients
        assert ok.ok
        assert gone.error == (
            f"delivering message to 127.0.0.1:{sink.port}: remote smtp server sent unexpected "
            "response status code: got 550, expected 2xx, permanent: 550 5.1.1 nope"
        )
        assert [m.rcpt_tos for m in sink.messages()] == [["ok@sink.example"]]


async def test_permanent_failure_at_data_applies_to_accepted_recipients(sink_factory: Any) -> None:
    async with sink_factory(
        data_replies={"bad@sink.example": "554 5.6.0 malformed message"},
        rcpt_replies={"gone@sink.example": "550 5.1.1 no such user"},
    ) as sink:
        res = await send(sink, ["ok@sink.example", "bad@sink.example", "gone@sink.example"])
        addr = f"127.0.0.1:{sink.port}"
        ok, bad, gone = res.recipients
        expected = (
            f"delivering message to {addr}: remote smtp server sent unexpected response status "
            "code: got 554, expected 2xx, permanent: 554 5.6.0 malformed message"
        )
        for r in (ok, bad):
            assert (r.ok, r.permanent, r.code, r.secode, r.error) == (
                False,
                True,
                554,
                "6.0",
                expected,
            )
        # The recipient rejected at RCPT keeps its own result.
        assert (gone.code, gone.secode) == (550, "1.1")
        assert res.error == expected and res.permanent and res.code == 554
        assert sink.messages() == []


async def test_temporary_failure_at_data(sink_factory: Any) -> None:
    async with sink_factory(
        data_replies={"later@sink.example": "451 4.3.0 try again later"}
    ) as sink:
        res = await send(sink, ["later@sink.example"])
        [r] = res.recipients
        assert (r.ok, r.permanent, r.code, r.enhanced_code) == (False, False, 451, "4.3.0")
        assert r.error.endswith(
            "transient: 451 4.3.0 try again later"
        )


async def test_mail_from_rejected_fails_everyone(sink_factory: Any) -> None:
    async with sink_factory(mail_reply="550 5.7.1 sender not allowed") as sink:
        res = await send(sink, ["a@sink.example", "b@sink.example"])
        assert all(r.permanent and r.code == 550 and r.secode == "7.1" for r in res.recipients)
        assert "got 550, expected 2xx, permanent: 550 5.7.1 sender not allowed" in res.error
        assert sink.messages() == []


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = int(s.getsockname()[1])
    s.close()
    return port


async def test_connection_refused_is_temporary_code_0() -> None:
    port = _closed_port()
    with trio.fail_after(10):
        res = await deliver(
            host="localhost",
            ips=["127.0.0.1"],
            port=port,
            ehlo_name="moxtrio.example",
            mail_from="s@moxtrio.example",
            recipients=["a@x.example", "b@x.example"],
            data=MSG,
        )
    assert not res.connected and not res.permanent and res.code == 0
    assert res.error == f"dial tcp 127.0.0.1:{port}: connect: connection refused"
    for r in res.recipients:
        assert (r.ok, r.permanent, r.code, r.secode, r.error) == (False, False, 0, "", res.error)


async def test_next_ip_is_tried_after_connect_failure(sink: SMTPSink) -> None:
    # The sink listens on 127.0.0.1 only, so 127.0.0.2 refuses.
    res = await send(sink, ["a@sink.example"], ips=["127.0.0.2", "127.0.0.1"])
    assert res.all_ok
    assert res.dialed_ips == ["127.0.0.2", "127.0.0.1"] and res.ip == "127.0.0.1"


async def test_opportunistic_starttls(sink_factory: Any) -> None:
    async with sink_factory(starttls=True) as sink:
        res = await send(sink, ["a@sink.example"])
        assert res.all_ok and res.tls and res.tls_version in ("TLSv1.2", "TLSv1.3")
        [m] = sink.messages()
        assert m.tls and m.tls_version == res.tls_version
        assert m.data == MSG


async def test_starttls_handshake_failure_falls_back_to_plaintext(sink_factory: Any) -> None:
    async with sink_factory(starttls_broken=True) as sink:
        res = await send(sink, ["a@sink.example"])
        assert res.all_ok and res.plaintext_fallback and not res.tls
        assert res.dialed_ips == ["127.0.0.1", "127.0.0.1"]
        [m] = sink.messages()
        assert not m.tls


async def test_tls_mode_none_skips_starttls(sink_factory: Any) -> None:
    async with sink_factory(starttls=True) as sink:
        res = await send(sink, ["a@sink.example"], tls_mode="none")
        assert res.all_ok and not res.tls
        assert not sink.messages()[0].tls


async def test_required_tls_mode_fails_on_broken_tls_without_fallback(sink_factory: Any) -> None:
    async with sink_factory(starttls_broken=True) as sink:
        res = await send(sink, ["a@sink.example"], tls_mode="required")
        assert not res.plaintext_fallback and not res.permanent and res.code == 0
        assert res.error.startswith("tls error: STARTTLS TLS handshake: ")
        assert sink.messages() == []


async def test_requiretls_without_server_support_is_permanent(sink_factory: Any) -> None:
    async with sink_factory(starttls=True) as sink:  # TLS, but no REQUIRETLS
        res = await send(sink, ["a@sink.example"], require_tls=True)
        [r] = res.recipients
        assert res.requiretls_unsupported and res.tls
        assert (r.ok, r.permanent, r.code, r.secode, r.enhanced_code) == (
            False,
            True,
            554,
            "7.30",
            "5.7.30",
        )
        assert "remote smtp server does not implement requiretls extension" in r.error
        assert sink.messages() == []
    async with sink_factory() as plain:  # no TLS at all
        res = await send(plain, ["a@sink.example"], require_tls=True)
        assert res.requiretls_unsupported and res.recipients[0].permanent
        assert plain.messages() == []


async def test_requiretls_no_plaintext_fallback(sink_factory: Any) -> None:
    async with sink_factory(starttls_broken=True, requiretls=True) as sink:
        res = await send(sink, ["a@sink.example"], require_tls=True)
        assert not res.plaintext_fallback and not res.recipients[0].ok
        assert res.error.startswith("tls error:")
        assert sink.messages() == []


async def test_requiretls_delivered_when_supported(sink_factory: Any) -> None:
    async with sink_factory(starttls=True, requiretls=True) as sink:
        res = await send(sink, ["a@sink.example"], require_tls=True)
        assert res.all_ok and res.tls
        [m] = sink.messages()
        assert m.requiretls and m.tls


async def test_8bit_message(sink_factory: Any) -> None:
    body = "Subject: caf\u00e9\r\n\r\nna\u00efve \u2603\r\n".encode()
    async with sink_factory() as sink:
        res = await send(sink, ["a@sink.example"], data=body, has8bit=True)
        assert res.all_ok
        [m] = sink.messages()
        assert m.data == body and "BODY=8BITMIME" in m.mail_options
    async with sink_factory(eightbitmime=False) as sink:
        res = await send(sink, ["a@sink.example"], data=body, has8bit=True)
        [r] = res.recipients
        # Temporary with code 0, like mox (see module docstring).
        assert (r.ok, r.permanent, r.code) == (False, False, 0)
        assert (
            "remote smtp server does not implement 8bitmime extension, required by message"
            in r.error
        )
        assert sink.messages() == []


async def test_smtputf8(sink_factory: Any) -> None:
    async with sink_factory() as sink:
        res = await send(sink, ["d\u00f6rte@sink.example"], smtputf8=True, has8bit=True)
        assert res.all_ok
        [m] = sink.messages()
        assert m.rcpt_tos == ["d\u00f6rte@sink.example"] and "SMTPUTF8" in m.mail_options
    async with sink_factory(smtputf8=False) as sink:
        res = await send(sink, ["d\u00f6rte@sink.example"], smtputf8=True)
        assert not res.recipients[0].ok and not res.recipients[0].permanent
        assert "does not implement smtputf8 extension" in res.error


async def test_message_larger_than_announced_size_is_permanent(sink_factory: Any) -> None:
    async with sink_factory(data_size_limit=100) as sink:
        res = await send(sink, ["a@sink.example"], data=MSG + b"x" * 200 + b"\r\n")
        assert res.permanent and res.recipients[0].permanent
        assert "message too large for remote smtp server" in res.error


async def test_dot_stuffing_and_line_endings(sink: SMTPSink) -> None:
    raw = (
        b"Subject: dots\r\n\r\n"
        b".\r\n"
        b".leading dot\r\n"
        b"..two dots\r\n"
        b"bare lf line\n"
        b".after bare lf\n"
        b"no final newline"
    )
    res = await send(sink, ["a@sink.example"], data=raw)
    assert res.all_ok
    [m] = sink.messages()
    expected = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n") + b"\r\n"
    assert m.data == expected


async def test_large_message_streamed_from_file_with_prefix(sink: SMTPSink, tmp_path: Path) -> None:
    prefix = b"Received: from test by moxtrio.example; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    path = tmp_path / "msg.eml"
    line = b"." + b"0123456789abcdef" * 6 + b"\r\n"  # every line needs stuffing
    n = (5 * 1024 * 1024) // len(line)
    with path.open("wb") as f:
        f.write(b"Subject: big\r\n\r\n")
        for _ in range(n):
            f.write(line)
    res = await send(sink, ["a@sink.example"], data=path, prefix=prefix)
    assert res.all_ok, res.error
    [m] = sink.messages()
    assert len(m.data) == len(prefix) + path.stat().st_size
    assert m.data == prefix + path.read_bytes()
    assert f"SIZE={len(prefix) + path.stat().st_size}" in m.mail_options


async def test_resolves_host_when_no_ips_given(sink: SMTPSink, dns_responder: Any) -> None:
    r = dns_responder({"mail.sink.example": {"A": ["127.0.0.1"]}})
    res = await send(
        sink,
        ["a@sink.example"],
        host="mail.sink.example",
        ips=None,
        resolver=Resolver(r.nameservers, port=r.port, timeout=1, lifetime=2),
    )
    assert res.all_ok and res.ip == "127.0.0.1"
    res2 = await send(
        sink,
        ["a@sink.example"],
        host="gone.sink.example",
        ips=None,
        resolver=Resolver(r.nameservers, port=r.port, timeout=1, lifetime=2),
    )
    assert not res2.connected and not res2.permanent
    assert re.fullmatch(r'looking up "gone\.sink\.example\.": no such host', res2.error)
