"""load_config: validation errors, domains.conf reload, lookups."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from core.config import ConfigError, load_config

MOX_CONF = """DataDir: data
LogLevel: info
Hostname: mail.example.org
Listeners:
	local:
		IPs:
			- 127.0.0.1
		WebAPIHTTP:
			Enabled: true
			Port: 1080
Postmaster:
	Account: app
	Mailbox: Inbox
Transports:
	relay:
		Fail:
			SMTPCode: 451
"""

DOMAINS_CONF = """Domains:
	example.com:
		LocalpartCatchallSeparator: +
	bücher.example:
		LocalpartCatchallSeparators:
			- +
			- -
	catch.example: nil
	case.example:
		LocalpartCaseSensitive: true
Accounts:
	app:
		Domain: example.com
		Destinations:
			app@example.com: nil
			Kunde@bücher.example:
				Mailbox: Books
			Mixed@case.example: nil
		FromIDLoginAddresses:
			- app+fromid@example.com
		KeepRetiredMessagePeriod: 168h
		OutgoingWebhook:
			URL: https://app.example.com/webhook/outgoing
			Authorization: Bearer secret
			Events:
				- delivered
				- failed
		WebhookSigningSecret: s3cret
		Routes:
			-
				ToDomain:
					- .example.net
				Transport: relay
	catcher:
		Domain: catch.example
		Destinations:
			@catch.example: nil
			boss@catch.example:
				Mailbox: Boss
"""


def write(tmp: Path, mox: str = MOX_CONF, domains: str = DOMAINS_CONF) -> Path:
    (tmp / "mox.conf").write_text(mox)
    (tmp / "domains.conf").write_text(domains)
    return tmp / "mox.conf"


def test_load_and_lookups(tmp_path: Path) -> None:
    c = load_config(write(tmp_path))
    assert c.data_dir == tmp_path / "data"
    assert c.resolve_path("/abs/x") == Path("/abs/x")
    assert c.static.Transports["relay"].Fail is not None
    assert c.static.Transports["relay"].Fail.smtp_code == 451
    app = c.account("app")
    assert app is not None and app.WebhookSigningSecret == "s3cret"
    assert app.OutgoingWebhook is not None and app.OutgoingWebhook.wants("failed")
    assert not app.OutgoingWebhook.wants("delayed")
    assert app.Routes[0].ToDomain == [".example.net"]
    assert c.account("nope") is None

    # IDNA/case-insensitive domain lookup.
    assert c.domain("BÜCHER.example") is not None
    assert c.domain("xn--bcher-kva.example") is c.domain("bücher.example")
    assert c.domain_name("XN--BCHER-KVA.EXAMPLE") == "bücher.example"
    assert c.catchall_separators("xn--bcher-kva.example") == ["+", "-"]
    assert c.catchall_separators("example.com") == ["+"]
    assert c.catchall_separators("unknown.example") == []

    m = c.lookup_destination("kunde-x+y@xn--bcher-kva.example")
    assert m is not None and m.account == "app" and m.mailbox == "Books"
    assert m.address == "kunde@bücher.example" and not m.catchall
    assert str(m.canonical) == "kunde@bücher.example"
    m = c.lookup_destination("App+Anything@Example.COM")
    assert m is not None and m.account == "app" and m.mailbox == "Inbox"
    assert c.lookup_destination("other@example.com") is None
    assert c.lookup_destination("x@nowhere.example") is None
    assert c.lookup_destination("not an address") is None

    # Catchall: explicit destination wins, everything else goes to @domain.
    m = c.lookup_destination("Boss@catch.example")
    assert m is not None and m.mailbox == "Boss" and not m.catchall
    m = c.lookup_destination("random@catch.example")
    assert m is not None and m.account == "catcher" and m.catchall and m.address == "@catch.example"

    # Case-sensitive domain.
    assert c.lookup_destination("Mixed@case.example") is not None
    assert c.lookup_destination("mixed@case.example") is None

    # Logins.
    assert c.account_for_login("app@example.com") == "app"
    assert c.account_for_login("app+whatever@example.com") == "app"
    assert c.account_for_login("app+fromid@example.com") == "app"
    assert c.account_for_login("KUNDE-1@bücher.example") == "app"
    assert c.account_for_login("random@catch.example") is None
    assert c.account_for_login("boss@catch.example") == "catcher"
    assert c.account_for_login("garbage") is None


@pytest.mark.parametrize(
    ("old", "new", "fragment", "key"),
    [
        ("\t\tLocalpartCatchallSeparator: +\n", "\t\tLocalpartCatchallSeparator: +\n\t\tLocalpartCatchallSeparators:\n\t\t\t- -\n",
         "cannot have both LocalpartCatchallSeparator and LocalpartCatchallSeparators", "LocalpartCatchallSeparators"),
        ("\t\t\t- -\n", "\t\t\t- +\n", 'duplicate localpart catchall separator "+"', "LocalpartCatchallSeparators"),
        ("\t\t\tapp@example.com: nil\n", "\t\t\tapp@example.com: nil\n\t\t\ta+b@example.com: nil\n",
         'contains localpart catchall separator "+"', "Destinations"),
        ("- app+fromid@example.com", "- app+fromid@unknown.example", "unknown domain in fromid login address", "FromIDLoginAddresses"),
        ("- app+fromid@example.com", "- app@catch.example", "localpart catchall separator not configured for domain for fromid login address", "FromIDLoginAddresses"),
        ("- app+fromid@example.com", "- other+fromid@example.com", 'fromid login address "other+fromid@example.com" for account "app" does not match its destination addresses', "FromIDLoginAddresses"),
        ("- app+fromid@example.com", "- not-an-address", "invalid fromid login address", "FromIDLoginAddresses"),
        ("\t\t\t\t- failed\n", "\t\t\t\t- exploded\n", 'invalid outgoing webhook event "exploded"', "Events"),
        ("URL: https://app.example.com/webhook/outgoing", "URL: ftp://app.example.com/x", "must be an absolute http or https url", "URL"),
        ("Transport: relay", "Transport: nosuch", 'unknown transport "nosuch"', "Transport"),
        ("\t\tDomain: example.com\n", "\t\tDomain: unknown.example\n", 'unknown domain "unknown.example"', "Domain"),
    ],
)
def test_validation_errors(tmp_path: Path, old: str, new: str, fragment: str, key: str) -> None:
    assert old in DOMAINS_CONF
    domains = DOMAINS_CONF.replace(old, new, 1)
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, domains=domains))
    e = ei.value
    assert fragment in e.message
    assert e.key == key
    assert e.path == str(tmp_path / "domains.conf")
    assert e.line > 0
    assert str(e).startswith(f"{tmp_path / 'domains.conf'}:{e.line}: ")


def test_fromid_via_catchall_is_valid(tmp_path: Path) -> None:
    domains = DOMAINS_CONF.replace("\tcatch.example: nil\n", "\tcatch.example:\n\t\tLocalpartCatchallSeparator: +\n")
    domains = domains.replace("\t\t\tboss@catch.example:\n", "\t\tFromIDLoginAddresses:\n\t\t\t- svc+id@catch.example\n\t\tDestinations2:\n")
    domains = domains.replace("\t\tDestinations2:\n\t\t\t\tMailbox: Boss\n", "")
    c = load_config(write(tmp_path, domains=domains))
    assert c.account_for_login("svc+id@catch.example") == "catcher"
    assert c.account_for_login("svc+other@catch.example") is None


def test_static_validation(tmp_path: Path) -> None:
    bad = MOX_CONF.replace("\t\t\tPort: 1080\n", "\t\t\tPort: 1080\n\t\t\tPath: webapi/\n")
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, mox=bad))
    assert "must start with a slash" in ei.value.message and ei.value.key == "Path"
    assert ei.value.line == 11
    ok = MOX_CONF.replace("\t\t\tPort: 1080\n", "\t\t\tPort: 1080\n\t\t\tPath: /api\n") + "Plugins:\n\t- webapi\n\t- webhooks\n"
    c = load_config(write(tmp_path, mox=ok))
    assert c.static.Listeners["local"].path("WebAPIHTTP") == "/api/"
    assert c.plugins == ["webapi", "webhooks"]


def test_postmaster_account_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as ei:
        load_config(write(tmp_path, mox=MOX_CONF.replace("Account: app", "Account: ghost")))
    assert 'postmaster account "ghost" does not exist' in ei.value.message


def _bump_mtime(p: Path) -> None:
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


def test_reload_on_mtime_change_and_keep_old_on_error(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    c = load_config(write(tmp_path))
    dpath = tmp_path / "domains.conf"
    first = c.dynamic
    assert c.dynamic is first  # nothing changed

    dpath.write_text(DOMAINS_CONF.replace("Bearer secret", "Bearer new"))
    _bump_mtime(dpath)
    # Until the reloader checks the file, the old version is still served.
    assert c.dynamic.Accounts["app"].OutgoingWebhook.Authorization == "Bearer secret"  # type: ignore[union-attr]
    c.reload_dynamic()
    assert c.dynamic.Accounts["app"].OutgoingWebhook.Authorization == "Bearer new"  # type: ignore[union-attr]
    assert c.dynamic is not first

    good = c.dynamic
    dpath.write_text(DOMAINS_CONF + "Bogus: 1\n")
    _bump_mtime(dpath)
    with caplog.at_level(logging.ERROR, logger="moxtrio.config"):
        c.reload_dynamic()
        assert c.dynamic is good
    assert c.last_reload_error is not None and c.last_reload_error.key == "Bogus"
    assert "keeping previous version" in caplog.text
    assert c.account_for_login("app@example.com") == "app"

    # Lookups follow the reloaded file.
    dpath.write_text(DOMAINS_CONF.replace("app@example.com: nil", "app2@example.com: nil").replace("- app+fromid@example.com", "- app2+fromid@example.com"))
    _bump_mtime(dpath)
    c.reload_dynamic()
    assert c.account_for_login("app2@example.com") == "app"
    assert c.account_for_login("app@example.com") is None
    assert c.last_reload_error is None
