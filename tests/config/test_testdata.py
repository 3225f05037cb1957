"""Every real mox config under testdata loads, with the values mox would see."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from core.config import Config, load_config, sconf
from core.config.models import Dynamic, Static

TESTDATA = Path("/work/shared/testdata")
ALL = ["webapisrv", "queue", "smtpfromid", "dsn", "ctl", "localserve"]


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


def test_webapisrv() -> None:
    c = load("webapisrv")
    s, d = c.static, c.dynamic
    assert s.DataDir == "data" and c.data_dir == TESTDATA / "webapisrv" / "data"
    assert s.User == "1000" and s.LogLevel == "trace" and s.Hostname == "mox.example"
    assert s.Listeners["local"].IPs == ["0.0.0.0"]
    assert s.Postmaster.Account == "mjl" and s.Postmaster.Mailbox == "postmaster"
    assert c.plugins is None
    mox_example = d.Domains["mox.example"]
    assert mox_example.LocalpartCatchallSeparator == "+"
    assert mox_example.DKIM.Selectors["testsel"].PrivateKeyFile == "testsel.rsakey.pkcs8.pem"
    assert mox_example.DKIM.Sign == ["testsel"]
    assert c.resolve_path(mox_example.DKIM.Selectors["testsel"].PrivateKeyFile).is_file()
    assert d.Domains["disabled.example"].Disabled is True
    mjl = d.Accounts["mjl"]
    assert mjl.MaxOutgoingMessagesPerDay == 30 and mjl.max_outgoing_messages_per_day == 30
    assert mjl.max_first_time_recipients_per_day == 10
    assert mjl.FromIDLoginAddresses == ["mjl+fromid@mox.example"]
    assert set(mjl.Destinations) == {"mjl@mox.example", "møx@mox.example", "móx@mox.example", "mjl@disabled.example"}
    assert mjl.RejectsMailbox == "Rejects"
    assert mjl.JunkFilter is not None and mjl.JunkFilter.Threshold == 0.95
    assert mjl.JunkFilter.Params.Twograms is True and mjl.JunkFilter.Params.TopWords == 10
    assert d.Accounts["disabled"].LoginDisabled == "testing"
    other = d.Accounts["other"]
    assert other.max_outgoing_messages_per_day == 1000
    assert other.max_first_time_recipients_per_day == 200
    assert other.OutgoingWebhook is None and other.KeepRetiredMessagePeriod == datetime.timedelta(0)
    # Unicode localparts look up, case-insensitively.
    m = c.lookup_destination("MØX@mox.example")
    assert m is not None and m.account == "mjl" and m.address == "møx@mox.example"
    assert c.account_for_login("mjl+fromid@mox.example") == "mjl"
    assert c.account_for_login("móx+x@MOX.example") == "mjl"
    assert c.account_for_login("disabled@mox.example") == "disabled"
    assert c.account_for_login("nobody@mox.example") is None


def test_queue() -> None:
    c = load("queue")
    s, d = c.static, c.dynamic
    submit = s.Transports["submit"].Submission
    assert submit is not None and submit.Host == "submission.example" and submit.NoSTARTTLS
    assert submit.Auth is not None and submit.Auth.Username == "test" and submit.Auth.Mechanisms == ["PLAIN"]
    tls = s.Transports["submittls"].Submissions
    assert tls is not None and tls.Auth is not None and tls.Auth.Password == "test1234"
    socks = s.Transports["socks"].Socks
    assert socks is not None and socks.Address == "localhost:1234" and socks.RemoteIPs == ["127.0.0.1"]
    assert socks.RemoteHostname == "localhost"
    assert s.Listeners["local"].IPs == []  # "local: nil"
    retired = d.Accounts["retired"]
    assert retired.KeepRetiredMessagePeriod == sconf.Duration(1)
    assert retired.KeepRetiredMessagePeriod and retired.KeepRetiredWebhookPeriod  # 1ns is "keep"
    assert sconf.format_duration(retired.KeepRetiredWebhookPeriod) == "1ns"
    assert retired.OutgoingWebhook is not None
    assert retired.OutgoingWebhook.URL == "http://localhost:1234/outgoing"
    assert retired.OutgoingWebhook.Authorization == "Basic dXNlcm5hbWU6cGFzc3dvcmQ="
    assert retired.OutgoingWebhook.wants("delivered")
    assert retired.IncomingWebhook is not None and retired.IncomingWebhook.URL == "http://localhost:1234/incoming"
    hook = d.Accounts["hook"]
    assert hook.OutgoingWebhook is not None and hook.KeepRetiredMessagePeriod == datetime.timedelta(0)
    assert not hook.KeepRetiredMessagePeriod
    assert len(d.Routes) == 1
    assert d.Routes[0].ToDomain == ["submit.example"] and d.Routes[0].Transport == "submit"
    assert c.catchall_separators("mox.example") == ["+"]


def test_smtpfromid() -> None:
    c = load("smtpfromid")
    assert c.dynamic.Accounts["mjl"].FromIDLoginAddresses == ["mjl+fromid@mox.example"]
    assert c.account_for_login("mjl+fromid@mox.example") == "mjl"
    m = c.lookup_destination("mjl+0123456789abcdefghijkl@mox.example")
    assert m is not None and m.account == "mjl" and m.address == "mjl@mox.example" and m.mailbox == "Inbox"


def test_dsn() -> None:
    c = load("dsn")
    sel = c.dynamic.Domains["mox.example"].DKIM.Selectors["testsel"]
    assert sel.Hash == "sha256" and sel.hash == "sha256"
    assert sel.Headers[0] == "From" and "Message-ID" in sel.Headers and len(sel.Headers) == 11
    assert c.catchall_separators("mox.example") == []
    assert c.lookup_destination("mjl+x@mox.example") is None
    assert c.lookup_destination("MJL@mox.example") is not None


def test_ctl() -> None:
    c = load("ctl")
    assert c.data_dir == (TESTDATA / "ctl" / "../data")
    mjl = c.dynamic.Accounts["mjl"]
    assert mjl.OutgoingWebhook is not None and mjl.OutgoingWebhook.URL == "http://localhost:1234"
    assert mjl.KeepRetiredMessagePeriod == datetime.timedelta(hours=1)
    assert sconf.format_duration(mjl.KeepRetiredWebhookPeriod) == "1h0m0s"
    assert set(mjl.Destinations) == {"mjl2@mox.example", "mjl@mox.example"}
    assert c.domain("MOX.EXAMPLE") is not None


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
