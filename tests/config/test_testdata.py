"""Every mox-format config in tests/data loads, with the values mox would see."""

from __future__ import annotations

import datetime

import pytest

from core.config import Config, load_config, sconf
from core.config.models import Dynamic, Static
from tests.support.paths import CONFIGS as TESTDATA

ALL = ["webapi", "queue", "fromid", "dsn", "ctl", "localserve"]


def load(name: str) -> Config:
    return load_config(TESTDATA / name / "mox.conf")


@pytest.mark.parametrize("name", ALL)
def test_loads_and_round_trips(name: str) -> None:
    c = load(name)
    assert c.dir == TESTDATA / name
    for obj, cls in ((c.static, Static), (c.dynamic, Dynamic)):
        text = sconf.write(obj)
        assert sconf.parse(cls, text) == obj
        assert sconf.parse(cls, sconf.write(obj, docs=True)) == obj


def test_webapi() -> None:
    c = load("webapi")
    s, d = c.static, c.dynamic
    assert s.DataDir == "data" and c.data_dir == TESTDATA / "webapi" / "data"
    assert s.User == "1000" and s.LogLevel == "trace" and s.Hostname == "mail.app.example"
    assert s.Listeners["local"].IPs == ["0.0.0.0"]
    assert s.Postmaster.Account == "ann" and s.Postmaster.Mailbox == "postmaster"
    assert c.plugins is None
    app_example = d.Domains["app.example"]
    assert app_example.LocalpartCatchallSeparator == "+"
    assert app_example.DKIM.Selectors["mail2026"].PrivateKeyFile == "mail2026.rsakey.pkcs8.pem"
    assert app_example.DKIM.Sign == ["mail2026"]
    assert c.resolve_path(app_example.DKIM.Selectors["mail2026"].PrivateKeyFile).is_file()
    assert d.Domains["paused.example"].Disabled is True
    ann = d.Accounts["ann"]
    assert ann.MaxOutgoingMessagesPerDay == 30 and ann.max_outgoing_messages_per_day == 30
    assert ann.max_first_time_recipients_per_day == 10
    assert ann.FromIDLoginAddresses == ["ann+fromid@app.example"]
    assert set(ann.Destinations) == {"ann@app.example", "änn@app.example", "ånn@app.example", "ann@paused.example"}
    assert ann.RejectsMailbox == "Rejects"
    assert ann.JunkFilter is not None and ann.JunkFilter.Threshold == 0.9
    assert ann.JunkFilter.Params.Twograms is True and ann.JunkFilter.Params.TopWords == 12
    assert d.Accounts["locked"].LoginDisabled == "under review"
    other = d.Accounts["ben"]
    assert other.max_outgoing_messages_per_day == 1000
    assert other.max_first_time_recipients_per_day == 200
    assert other.OutgoingWebhook is None and other.KeepRetiredMessagePeriod == datetime.timedelta(0)
    # Unicode localparts look up, case-insensitively.
    m = c.lookup_destination("ÄNN@app.example")
    assert m is not None and m.account == "ann" and m.address == "änn@app.example"
    assert c.account_for_login("ann+fromid@app.example") == "ann"
    assert c.account_for_login("ånn+x@APP.example") == "ann"
    assert c.account_for_login("locked@app.example") == "locked"
    assert c.account_for_login("nobody@app.example") is None


def test_queue() -> None:
    c = load("queue")
    s, d = c.static, c.dynamic
    submit = s.Transports["relay"].Submission
    assert submit is not None and submit.Host == "relay.app.example" and submit.NoSTARTTLS
    assert submit.Auth is not None and submit.Auth.Username == "relayuser" and submit.Auth.Mechanisms == ["PLAIN"]
    tls = s.Transports["relaytls"].Submissions
    assert tls is not None and tls.Auth is not None and tls.Auth.Password == "relaypass99"
    socks = s.Transports["proxy"].Socks
    assert socks is not None and socks.Address == "localhost:9050" and socks.RemoteIPs == ["127.0.0.1"]
    assert socks.RemoteHostname == "localhost"
    assert s.Listeners["local"].IPs == []  # "local: nil"
    retired = d.Accounts["shortlived"]
    assert retired.KeepRetiredMessagePeriod == sconf.Duration(1)
    assert retired.KeepRetiredMessagePeriod and retired.KeepRetiredWebhookPeriod  # 1ns is "keep"
    assert sconf.format_duration(retired.KeepRetiredWebhookPeriod) == "1ns"
    assert retired.OutgoingWebhook is not None
    assert retired.OutgoingWebhook.URL == "http://localhost:8025/events"
    assert retired.OutgoingWebhook.Authorization == "Basic aG9vazpzZWNyZXQ="
    assert retired.OutgoingWebhook.wants("delivered")
    assert retired.IncomingWebhook is not None and retired.IncomingWebhook.URL == "http://localhost:8025/inbound"
    hook = d.Accounts["hooked"]
    assert hook.OutgoingWebhook is not None and hook.KeepRetiredMessagePeriod == datetime.timedelta(0)
    assert not hook.KeepRetiredMessagePeriod
    assert len(d.Routes) == 1
    assert d.Routes[0].ToDomain == ["relayed.example"] and d.Routes[0].Transport == "relay"
    assert c.catchall_separators("app.example") == ["+"]


def test_fromid() -> None:
    c = load("fromid")
    assert c.dynamic.Accounts["ann"].FromIDLoginAddresses == ["ann+fromid@app.example"]
    assert c.account_for_login("ann+fromid@app.example") == "ann"
    m = c.lookup_destination("ann+0123456789abcdefghijkl@app.example")
    assert m is not None and m.account == "ann" and m.address == "ann@app.example" and m.mailbox == "Inbox"


def test_dsn() -> None:
    c = load("dsn")
    sel = c.dynamic.Domains["app.example"].DKIM.Selectors["mail2026"]
    assert sel.Hash == "sha256" and sel.hash == "sha256"
    assert sel.Headers[0] == "From" and "Message-ID" in sel.Headers and len(sel.Headers) == 11
    assert c.catchall_separators("app.example") == []
    assert c.lookup_destination("ann+x@app.example") is None
    assert c.lookup_destination("ANN@app.example") is not None


def test_ctl() -> None:
    c = load("ctl")
    assert c.data_dir == (TESTDATA / "ctl" / "../data")
    ann = c.dynamic.Accounts["ann"]
    assert ann.OutgoingWebhook is not None and ann.OutgoingWebhook.URL == "http://localhost:8025"
    assert ann.KeepRetiredMessagePeriod == datetime.timedelta(hours=1)
    assert sconf.format_duration(ann.KeepRetiredWebhookPeriod) == "1h0m0s"
    assert set(ann.Destinations) == {"ann2@app.example", "ann@app.example"}
    assert c.domain("APP.EXAMPLE") is not None


def test_localserve() -> None:
    c = load("localserve")
    s, d = c.static, c.dynamic
    lst = s.Listeners["local"]
    assert lst.IPs == ["127.0.0.1", "::1"]
    assert s.User == "0" and s.Pedantic and s.AdminPasswordFile == "adminpasswd"
    assert s.TLS.CA is not None and s.TLS.CA.CertFiles == ["localhost.crt"] and s.TLS.CA.AdditionalToSystem
    assert lst.TLS is not None and lst.TLS.KeyCerts[0].KeyFile == "localhost.key"
    assert [lst.port(k) for k in ("SMTP", "Submission", "Submissions", "IMAP", "IMAPS")] == [1025, 1587, 1465, 1143, 1993]
    assert lst.port("WebAPIHTTP") == 1080 and lst.port("WebAPIHTTPS") == 1443
    assert lst.path("WebAPIHTTP") == "/webapi/" and lst.path("AdminHTTP") == "/admin/"
    assert lst.path("AccountHTTPS") == "/account/"
    assert lst.Submission.NoRequireSTARTTLS and lst.MetricsHTTP.Port == 1081
    assert lst.WebserverHTTP.Enabled and lst.WebserverHTTPS.Port == 1443
    mox = d.Accounts["mox"]
    assert mox.KeepRetiredMessagePeriod == datetime.timedelta(hours=72)
    assert mox.Domain == "" and mox.NoFirstTimeSenderDelay
    assert mox.AutomaticJunkFlags.Enabled and mox.AutomaticJunkFlags.JunkMailboxRegexp == "^(junk|spam)"
    assert mox.JunkFilter is not None and mox.JunkFilter.Params.MaxPower == 0.01
    assert mox.JunkFilter.Params.RareWords == 2
    sel = d.Domains["localhost"].DKIM.Selectors["localserve"]
    assert sel.Expiration == "72h" and sel.PrivateKeyFile == "dkim.localserve.privatekey.pkcs8.pem"
    wh = d.WebHandlers[0]
    assert wh.LogName == "workdir" and wh.PathRegexp == "^/workdir/" and wh.DontRedirectPlainHTTP
    assert wh.WebStatic is not None and wh.WebStatic.ListFiles and wh.WebStatic.Root == "."
    assert c.account_for_login("mox+anything@localhost") == "mox"
    assert c.account_for_login("MOX@LOCALHOST") == "mox"


@pytest.mark.parametrize("name", ["localserve"])
def test_localserve_files_rewrite_byte_identical(name: str) -> None:
    c = load(name)
    assert sconf.write(c.static, docs=True) == (TESTDATA / name / "mox.conf").read_text()
    assert sconf.write(c.dynamic, docs=True) == (TESTDATA / name / "domains.conf").read_text()
