"""SMTP delivery and submission with a mox-format config (tests/data/configs/webapi):
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
from tests.support.paths import CONFIGS
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
    directory = tmp_path / "webapi"
    shutil.copytree(CONFIGS / "webapi", directory)
    ip = unique_loopback_ip()
    conf = directory / "mox.conf"
    text = conf.read_text()
    assert "\tlocal:\n\t\tIPs:\n\t\t\t- 0.0.0.0\n" in text
    conf.write_text(text.replace("\tlocal:\n\t\tIPs:\n\t\t\t- 0.0.0.0\n", LISTENER.format(ip=ip)))
    # The sender domain must exist in DNS for the delivery listener to accept it.
    with DNSResponder({"localhost": {"A": ["127.0.0.1"]}}) as dns:
        resolver = Resolver(dns.nameservers, port=dns.port, lifetime=3)
        async with running_server(directory, localserve=False,
                                  resolver=resolver) as srv:
            await set_password(srv.ctx, "ann", "test1234")  # type: ignore[arg-type]
            await set_password(srv.ctx, "locked", "test1234")  # type: ignore[arg-type]
            yield srv


def ip_of(server: Server) -> str:
    return server.config.static.Listeners["local"].IPs[0]


async def test_delivery_to_destinations_catchall_unicode_and_postmaster(server: Server) -> None:
    ip = ip_of(server)

    def deliver() -> list[tuple[int, bytes]]:
        out = []
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.ehlo()
            for rcpt in ["ann+tag@app.example", "ANN@app.example", "nobody@app.example",
                         "x@paused.example", "someone@unknown.example", "postmaster@app.example"]:
                s.rset()
                s.mail("sender@localhost")
                out.append(s.rcpt(rcpt))
            s.rset()
            s.mail("sender@localhost", ["SMTPUTF8"])
            out.append(s.rcpt("änn@app.example"))
            s.data(b"From: sender@localhost\r\nSubject: unicode\r\n\r\nhi\r\n")
        return out

    replies = await in_thread(deliver)
    codes = [c for c, _ in replies]
    assert codes == [250, 250, 550, 450, 550, 250, 250]
    assert replies[2][1].startswith(b"5.1.1 no such user")
    assert replies[3][1].startswith(b"4.2.1 recipient domain temporarily disabled")
    assert replies[4][1].startswith(b"5.1.2 not accepting email for domain")
    rows = await wait_rows(server, "select account, rcpt_to_localpart, rcpt_to_domain from messages")
    assert [tuple(r) for r in rows] == [("ann", "änn", "app.example")]

    def deliver_catchall() -> None:
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.sendmail("sender@localhost", ["ann+tag@app.example", "postmaster@app.example"],
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
    assert [tuple(r) for r in rows] == [("ann+tag", "Inbox"), ("postmaster", "postmaster")]


async def test_submission_rules_from_config(server: Server) -> None:
    ip = ip_of(server)

    def login_disabled() -> None:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("locked@app.example", "test1234")

    with pytest.raises(smtplib.SMTPAuthenticationError):
        await in_thread(login_disabled)

    def disabled_from() -> None:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("ann@app.example", "test1234")
            s.sendmail("ann@app.example", ["a@example.org"], b"From: ann@paused.example\r\n\r\nx\r\n")

    with pytest.raises(smtplib.SMTPDataError) as info:
        await in_thread(disabled_from)
    assert info.value.smtp_code == 451
    assert b"4.3.0 domain of message from header is temporarily disabled" in info.value.smtp_error

    def too_many() -> None:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("ann@app.example", "test1234")
            s.sendmail("ann@app.example", [f"r{i}@example.org" for i in range(31)],
                       b"From: ann@app.example\r\n\r\nx\r\n")

    with pytest.raises(smtplib.SMTPDataError) as limit:
        await in_thread(too_many)
    assert limit.value.smtp_code == 451
    assert b"4.7.1 max number of messages (30) over past 24h reached" in limit.value.smtp_error


async def test_connection_rate_limit_is_configurable(tmp_path: Path) -> None:
    directory = tmp_path / "webapi"
    shutil.copytree(CONFIGS / "webapi", directory)
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


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("ConnectionsPerMinute: 5", "ConnectionsPerMinute must be three positive integers"),
        ("AuthFailDelay: -1", "AuthFailDelay must be a non-negative number of seconds"),
    ],
)
async def test_bad_smtp_settings_stop_the_server(tmp_path: Path, setting: str, message: str) -> None:
    from core.plugin_api import PluginConfigError

    directory = tmp_path / "webapi"
    shutil.copytree(CONFIGS / "webapi", directory)
    (directory / "plugins").mkdir()
    (directory / "plugins" / "smtp.yaml").write_text(setting + "\n")
    with pytest.RaisesGroup(
        pytest.RaisesExc(PluginConfigError, match=message),
        flatten_subgroups=True,
    ):
        async with running_server(directory, localserve=False):
            pass


async def test_unknown_local_recipient_refused_on_submission_outside_localserve(server: Server) -> None:
    def rcpt() -> tuple[int, bytes]:
        with smtplib.SMTP(ip_of(server), 1587, timeout=10) as s:
            s.login("ann@app.example", "test1234")
            s.mail("ann@app.example")
            return s.rcpt("nobody@app.example")

    code, text = await in_thread(rcpt)
    assert code == 550 and text.startswith(b"5.1.1 no such user")

