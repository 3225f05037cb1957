"""Per-IP limiters, SCRAM/password checks and the localserve decision function."""

from __future__ import annotations

import base64

import pytest

from core.loginlimit import LoginLimiter
from core.passwords import derive_scram, normalize_password, verify_password
from core.smtp.auth import SaslError, ScramProofError, ScramServer
from core.smtp.limits import (
    WindowLimiter,
    connection_count_limiter,
    connection_rate_limiter,
    ip_classes,
)
from core.smtp.reply import Reply
from plugins.localserve.simulate import failure_rejection, special_localpart_code
from tests.smtp.helpers import ScramClient


def special_localpart_reply(code: int) -> Reply:
    """The reply the SMTP server renders for the plugin's failure verdict."""
    rej = failure_rejection(code)
    return Reply(rej.code, rej.enhanced, rej.text)


def test_ip_classes() -> None:
    assert ip_classes("192.0.2.77") == ("192.0.2.77/32", "192.0.2.64/26", "192.0.0.0/21")
    assert ip_classes("::ffff:192.0.2.77")[0] == "192.0.2.77/32"
    assert ip_classes("2001:db8:1:2:3::4") == (
        "2001:db8:1:2::/64",
        "2001:db8:1::/48",
        "2001:db8::/32",
    )


def test_login_limiter_worked_example() -> None:
    # mox's numbers: 10 failures a minute per address, then refused; 30 per /26.
    t = 1_700_000_000.0
    lim = LoginLimiter()
    for _ in range(10):
        assert lim.allowed("127.0.0.4", now=t)
        lim.failed("127.0.0.4", now=t)
    assert not lim.allowed("127.0.0.4", now=t)
    # Other /32s in the same /26 still have budget (30 for the /26).
    assert lim.allowed("127.0.0.5", now=t)
    # Next minute window: the 1-minute counts reset, the 24h ones don't.
    t2 = (t // 60 + 1) * 60
    assert lim.allowed("127.0.0.4", now=t2)
    for i in range(40):
        lim.failed("127.0.0.4", now=t2 + 60 * (i // 9 + 1))
    assert not lim.allowed("127.0.0.4", now=t2 + 3600)  # 50 per day reached.


def test_login_limiter_success_forgives_only_that_account() -> None:
    t = 1_700_000_000.0
    lim = LoginLimiter()
    for _ in range(8):
        lim.failed("10.0.0.1", "victim", now=t)
    lim.succeeded("10.0.0.1", "attacker", now=t)  # Forgives nothing of "victim".
    lim.failed("10.0.0.1", "victim", now=t)
    lim.failed("10.0.0.1", "", now=t)  # Unknown user names count per IP only.
    assert not lim.allowed("10.0.0.1", now=t)
    # The account's owner logging in from there forgives that pair's failures.
    lim.succeeded("10.0.0.1", "victim", now=t)
    assert lim.allowed("10.0.0.1", now=t)
    for _ in range(8):
        lim.failed("10.0.0.1", "", now=t)
    assert lim.allowed("10.0.0.1", now=t)
    lim.failed("10.0.0.1", "", now=t)
    assert not lim.allowed("10.0.0.1", now=t)


def test_login_limiter_counts_per_account_across_networks() -> None:
    t = 1_700_000_000.0
    lim = LoginLimiter()
    ips = [f"10.{i}.0.1" for i in range(30)]  # 30 different /21s.
    for ip in ips:
        lim.failed(ip, "victim", now=t)
    assert not lim.allowed("10.99.0.1", "victim", now=t)
    assert lim.allowed("10.99.0.1", "other", now=t)
    assert lim.allowed("10.99.0.1", now=t)
    lim.succeeded("10.5.0.1", "victim", now=t)  # The owner's login clears the account count.
    assert lim.allowed("10.99.0.1", "victim", now=t)


def test_connection_limiters() -> None:
    t = 1_700_000_000.0
    rate = connection_rate_limiter()
    assert all(rate.add("192.0.2.1", now=t) for _ in range(300))
    assert not rate.add("192.0.2.1", now=t)
    assert rate.add("192.0.2.2", now=t)  # /32 is separate; /26 allows 900.
    assert rate.add("192.0.2.1", now=(t // 60 + 1) * 60)
    conc = connection_count_limiter()
    assert all(conc.add("2001:db8::1", now=t) for _ in range(30))
    assert not conc.add("2001:db8::1", now=t)
    assert conc.add("2001:db8::1", -1, now=t + 1e9)  # Never resets; release works.
    assert conc.add("2001:db8::1", now=t + 1e9)
    custom = WindowLimiter([(None, (1, 1, 1))])
    assert (
        custom.add("192.0.2.1")
        and not custom.add("192.0.2.63")
        and custom.add("192.0.3.1") is False
    )


def test_scram_server_exchange() -> None:
    creds = derive_scram("test1234", "sha256", 4096, b"saltsalt")
    client = ScramClient("mjl@mox.example", "test1234")
    server = ScramServer(client.first())
    assert server.authentication == "mjl@mox.example" and server.authorization == ""
    final = server.finish(client.final(server.server_first(creds).encode()), creds)
    assert client.verify(final.encode())

    bad = ScramClient("mjl@mox.example", "wrong")
    server = ScramServer(bad.first())
    with pytest.raises(ScramProofError):
        server.finish(bad.final(server.server_first(creds).encode()), creds)

    # Nonce tampering and channel-binding mismatch are protocol errors.
    c = ScramClient("u", "test1234")
    server = ScramServer(c.first())
    msg = c.final(server.server_first(creds).encode()).replace(b",r=", b",r=x", 1)
    with pytest.raises(SaslError):
        server.finish(msg, creds)
    for first in [
        b"p=tls-unique,,n=u,r=abc",
        b"x,,n=u,r=abc",
        b"n,,m=ext,n=u,r=abc",
        b"n,,n=u=ZZ,r=abc",
        b"n,,r=abc",
        b"\xff",
    ]:
        with pytest.raises(SaslError):
            ScramServer(first)
    s = ScramServer(b"n,a=a=3Db,n=x=2Cy,r=abc")
    assert s.authorization == "a=b" and s.authentication == "x,y"


def test_password_checks_use_scram_credentials() -> None:
    creds = derive_scram("pässword\u00a0x", "sha256", 1000, b"s" * 16)
    assert verify_password("pässword x", creds)  # NBSP maps to space.
    assert verify_password("pa\u0308ssword x", creds)  # NFC.
    assert not verify_password("password x", creds)
    assert normalize_password("a\u2003b") == "a b"
    # Matches RFC 7677's test vector (user "user", password "pencil").
    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    v = derive_scram("pencil", "sha256", 4096, salt)
    assert base64.b64encode(v.stored_key) == b"WG5d8oPm3OtcPnkdi4Uo7BkeZkBFzpcXkuLmtbsT4qY="
    assert base64.b64encode(v.server_key) == b"wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="


@pytest.mark.parametrize(
    ("localpart", "want"),
    [
        ("usertemperror", 451),
        ("permerror", 550),
        ("rcpttopermerror", 550),
        ("usertimeout", "timeout"),
        ("timeout", "timeout"),
        ("x421", 421),
        ("data599", 599),
        ("data600", 600),
        ("user554", 554),
        ("data399", None),
        ("data601", None),
        ("400", 400),
        ("40", None),
        ("x+45", None),
        ("x٤٥٠", None),  # Arabic-Indic digits are not Go digits.
        ("x 45", None),
        ("TEMPERROR", None),  # Case-sensitive.
        ("", None),
    ],
)
def test_special_localpart_code(localpart: str, want: object) -> None:
    assert special_localpart_code(localpart) == want


def test_special_localpart_reply() -> None:
    r = special_localpart_reply(550)
    assert r.render("tZ003gvSN4Bkg3XvvxGp-A") == (
        b"550 5.0.0 failure with code 550 due to special localpart (tZ003gvSN4Bkg3XvvxGp-A)\r\n"
    )
    assert special_localpart_reply(600).render("")[:10] == b"600 6.0.0 "
