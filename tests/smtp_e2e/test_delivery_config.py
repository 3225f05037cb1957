"""SMTP delivery and submission with a real mox config (testdata/webapisrv):
destinations, catchall separator, unicode localparts, postmaster, disabled
domains and logins, and the daily outgoing limits."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.accounts import set_password
from core.dns import Resolver
from core.runtime import Server
from tests.smtp_e2e.conftest import in_thread, wait_rows
from tests.support.dnsresponder import DNSResponder
from tests.support.inproc import running_server
from tests.support.paths import TESTDATA
from tests.support.procs import unique_loopback_ip

LISTENER = """\tlocal:
\t\tIPs:
\t\t\t- {ip}
\t\tSMTP:
\t\t\tEnabled: true
\t\t\tPort: 1025
\t\tSubmission:
\t\t\tEnabled: true
\t\t\tPort: 1587
\t\t\tNoRequireSTARTTLS: true
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    directory = tmp_path / "webapisrv"
    shutil.copytree(TESTDATA / "webapisrv", directory)
    ip = unique_loopback_ip()
    conf = directory / "mox.conf"
    text = conf.read_text()
    assert "\tlocal:\n\t\tIPs:\n\t\t\t- 0.0.0.0\n" in text
    conf.write_text(text.replace("\tlocal:\n\t\tIPs:\n\t\t\t- 0.0.0.0\n", LISTENER.format(ip=ip)))
    # The sender domain must exist in DNS for the delivery listener to accept it.
    with DNSResponder({"localhost": {"A": ["127.0.0.1"]}}) as dns:
        resolver = Resolver(dns.nameservers, port=dns.port, lifetime=3)
        async with running_server(directory, localserve=False,
                                  services={"dns_resolver": resolver}) as srv:
            await set_password(srv.ctx, "mjl", "test1234")  # type: ignore[arg-type]
            await set_password(srv.ctx, "disabled", "test1234")  # type: ignore[arg-type]
            yield srv


def ip_of(server: Server) -> str:
    return server.config.static.Listeners["local"].IPs[0]


async def test_delivery_to_destinations_catchall_unicode_and_postmaster(server: Server) -> None:
    ip = ip_of(server)

    def deliver() -> list[tuple[int, bytes]]:
        out = []
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.ehlo()
            for rcpt in ["mjl+tag@mox.example", "MJL@mox.example", "nobody@mox.example",
                         "x@disabled.example", "someone@unknown.example", "postmaster@mox.example"]:
                s.rset()
                s.mail("sender@localhost")
                out.append(s.rcpt(rcpt))
            s.rset()
            s.mail("sender@localhost", ["SMTPUTF8"])
            out.append(s.rcpt("møx@mox.example"))
            s.data(b"From: sender@localhost\r\nSubject: unicode\r\n\r\nhi\r\n")
        return out

    replies = await in_thread(deliver)
    codes = [c for c, _ in replies]
    assert codes == [250, 250, 550, 450, 550, 250, 250]
    assert replies[2][1].startswith(b"5.1.1 no such user")
    assert replies[3][1].startswith(b"4.2.1 recipient domain temporarily disabled")
    assert replies[4][1].startswith(b"5.1.2 not accepting email for domain")
    rows = await wait_rows(server, "select account, rcpt_to_localpart, rcpt_to_domain from messages")
    assert [tuple(r) for r in rows] == [("mjl", "møx", "mox.example")]

    def deliver_catchall() -> None:
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.sendmail("sender@localhost", ["mjl+tag@mox.example", "postmaster@mox.example"],
                       b"From: sender@localhost\r\nSubject: two\r\n\r\nhi\r\n")

    await in_thread(deliver_catchall)
    rows = await wait_rows(
        server,
        "select m.rcpt_to_localpart, b.name from messages m join mailboxes b on b.id = m.mailbox_id "
        "where m.subject = 'two' order by m.id",
        n=2,
    )
    # The RcptTo keeps the catchall suffix (DSN matching relies on it); the
    # postmaster address goes to Postmaster.Account's Postmaster.Mailbox.
    assert [tuple(r) for r in rows] == [("mjl+tag", "Inbox"), ("postmaster", "postmaster")]


async def test_submission_rules_from_config(server: Server) -> None:
    ip = ip_of(server)

    def login_disabled() -> None:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("disabled@mox.example", "test1234")

    with pytest.raises(smtplib.SMTPAuthenticationError):
        await in_thread(login_disabled)

    def disabled_from() -> None:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("mjl@mox.example", "test1234")
            s.sendmail("mjl@mox.example", ["a@example.org"], b"From: mjl@disabled.example\r\n\r\nx\r\n")

    with pytest.raises(smtplib.SMTPDataError) as info:
        await in_thread(disabled_from)
    assert info.value.smtp_code == 451
    assert b"4.3.0 domain of message from header is temporarily disabled" in info.value.smtp_error

    def too_many() -> None:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("mjl@mox.example", "test1234")
            s.sendmail("mjl@mox.example", [f"r{i}@example.org" for i in range(31)],
                       b"From: mjl@mox.example\r\n\r\nx\r\n")

    with pytest.raises(smtplib.SMTPDataError) as limit:
        await in_thread(too_many)
    assert limit.value.smtp_code == 451
    assert b"4.7.1 max number of messages (30) over past 24h reached" in limit.value.smtp_error


async def test_connection_rate_limit_is_configurable(tmp_path: Path) -> None:
    directory = tmp_path / "webapisrv"
    shutil.copytree(TESTDATA / "webapisrv", directory)
    ip = unique_loopback_ip()
    conf = directory / "mox.conf"
    conf.write_text(conf.read_text().replace("\tlocal:\n\t\tIPs:\n\t\t\t- 0.0.0.0\n", LISTENER.format(ip=ip)))
    (directory / "plugins").mkdir()
    (directory / "plugins" / "smtp.yaml").write_text("ConnectionsPerMinute: [2, 10, 10]\n")
    async with running_server(directory, localserve=False):

        def connect() -> tuple[int, bytes]:
            s = smtplib.SMTP(timeout=10)
            try:
                return s.connect(ip, 1025)
            except smtplib.SMTPConnectError as exc:
                return exc.smtp_code, exc.smtp_error
            finally:
                s.close()

        replies = [await in_thread(connect) for _ in range(3)]
    assert [code for code, _ in replies] == [220, 220, 421]


async def test_bad_smtp_settings_stop_the_server(tmp_path: Path) -> None:
    from core.plugin_api import PluginConfigError

    directory = tmp_path / "webapisrv"
    shutil.copytree(TESTDATA / "webapisrv", directory)
    (directory / "plugins").mkdir()
    (directory / "plugins" / "smtp.yaml").write_text("ConnectionsPerMinute: 5\n")
    with pytest.RaisesGroup(
        pytest.RaisesExc(PluginConfigError, match="ConnectionsPerMinute must be three positive integers"),
        flatten_subgroups=True,
    ):
        async with running_server(directory, localserve=False):
            pass
