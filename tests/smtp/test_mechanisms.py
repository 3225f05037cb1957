"""AUTH mechanisms as mox offers them, each tested with an independent client
where one exists: smtplib (CRAM-MD5, PLAIN, LOGIN), scramp (SCRAM-SHA-1/256,
-PLUS with tls-unique and tls-server-end-point), and our own SCRAM client for
tls-exporter (which scramp does not implement)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import smtplib
import ssl
from typing import Any

import pytest
import scramp
import trio

from core import tlsbinding
from core.smtp.handler import MemoryHandler
from core.smtp.session import SessionConfig
from tests.smtp.helpers import Certs, RawClient, ScramClient, scram_login, smtp_client, start

USER, PASSWORD = "mjl@mox.example", "test1234"
LONG_PASSWORD = "ä" * 40  # 80 bytes: longer than an HMAC-MD5 key block.
ALL_PLUS = "SCRAM-SHA-256-PLUS SCRAM-SHA-256 SCRAM-SHA-1-PLUS SCRAM-SHA-1 CRAM-MD5 PLAIN LOGIN"


def handler() -> MemoryHandler:
    return MemoryHandler(
        "submission",
        logins={USER: ("mjl", PASSWORD), "long@mox.example": ("long", LONG_PASSWORD)},
        iterations=4096,  # scramp refuses fewer.
    )


def b64(b: bytes | str) -> str:
    return base64.b64encode(b.encode() if isinstance(b, str) else b).decode()


async def plain_client(port: int) -> RawClient:
    c = await RawClient.connect(port)
    await c.reply()
    await c.cmd("EHLO x")
    return c


async def tls_client(port: int, certs: Certs, max_version: ssl.TLSVersion | None = None) -> tuple[RawClient, str]:
    """STARTTLS, EHLO; returns the client and the AUTH line the server offers."""
    c = await plain_client(port)
    assert (await c.cmd1("STARTTLS")).startswith("220 2.0.0 go! (")
    ctx = certs.client_context()
    if max_version is not None:
        ctx.maximum_version = max_version
    await c.starttls(ctx)
    auth = [line[4:] for line in await c.cmd("EHLO x") if line[4:].startswith("AUTH ")]
    return c, auth[0] if auth else ""


def ssl_object(c: RawClient) -> ssl.SSLObject:
    obj = c.stream._ssl_object  # type: ignore[attr-defined]
    assert isinstance(obj, ssl.SSLObject)
    return obj


async def scramp_login(c: RawClient, mech: str, user: str, password: str, cb: Any = None) -> str:
    client = scramp.ScramClient([mech], user, password, channel_binding=cb)
    r = await c.cmd1(f"AUTH {mech} " + b64(client.get_client_first()))
    if not r.startswith("334 "):
        return r
    client.set_server_first(base64.b64decode(r[4:]).decode())
    r = await c.cmd1(b64(client.get_client_final()))
    if not r.startswith("334 "):
        return r
    final = base64.b64decode(r[4:]).decode()
    if final.startswith("e="):
        return await c.cmd1("*")
    client.set_server_final(final)  # Checks the server signature.
    return await c.cmd1("")


@pytest.fixture
def cfg() -> SessionConfig:
    return SessionConfig(auth_fail_delay=0, require_tls_for_auth=False)


async def test_smtplib_cram_md5_plain_login(nursery: trio.Nursery, cfg: SessionConfig) -> None:
    port = await start(nursery, handler(), cfg)

    def login(mech: str, password: str) -> tuple[int, bytes]:
        with smtp_client(port) as s:
            s.ehlo()
            s.user, s.password = USER, password
            method = {"CRAM-MD5": s.auth_cram_md5, "PLAIN": s.auth_plain, "LOGIN": s.auth_login}[mech]
            return s.auth(mech, method, initial_response_ok=mech == "PLAIN")

    for mech in ("CRAM-MD5", "PLAIN", "LOGIN"):
        assert await trio.to_thread.run_sync(login, mech, PASSWORD) == (235, b"2.7.0 nice"), mech
        with pytest.raises(smtplib.SMTPAuthenticationError) as info:
            await trio.to_thread.run_sync(login, mech, "wrong")
        assert info.value.smtp_code == 535 and info.value.smtp_error.startswith(b"5.7.8 bad user/pass")


async def test_cram_md5_long_password_and_unknown_user(nursery: trio.Nursery, cfg: SessionConfig) -> None:
    port = await start(nursery, handler(), cfg)
    key = hashlib.md5(LONG_PASSWORD.encode()).digest()  # RFC 2104: long keys are hashed first.
    for user, k, want in [("long@mox.example", key, "235 2.7.0 nice"), ("nobody@mox.example", key, "535 5.7.8 bad user/pass")]:
        c = await plain_client(port)
        r = await c.cmd1("AUTH CRAM-MD5")
        assert r.startswith("334 ")
        challenge = base64.b64decode(r[4:])
        assert challenge.startswith(b"<") and challenge.endswith(b"@localhost>")
        digest = hmac.new(k, challenge, "md5").hexdigest()
        assert (await c.cmd1(b64(f"{user} {digest}"))).startswith(want)
        await c.aclose()
    c = await plain_client(port)
    await c.cmd1("AUTH CRAM-MD5")
    assert (await c.cmd1(b64("no-digest"))).startswith("501 5.5.4 malformed cram-md5 response")
    await c.aclose()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1", "SCRAM-SHA-256"])
async def test_scramp_without_tls(nursery: trio.Nursery, cfg: SessionConfig, mech: str) -> None:
    port = await start(nursery, handler(), cfg)
    c = await plain_client(port)
    assert (await scramp_login(c, mech, USER, "wrong")).startswith("535 5.7.8 bad credentials")
    assert await scramp_login(c, mech, USER, PASSWORD) == "235 2.7.0 nice"
    await c.aclose()
    c = await plain_client(port)
    # -PLUS needs TLS.
    assert (await c.cmd1(f"AUTH {mech}-PLUS " + b64("p=tls-unique,,n=u,r=abcdefgh"))).startswith(
        "538 5.7.11 scram plus mechanism requires tls connection"
    )
    await c.aclose()


@pytest.mark.parametrize("mech", ["SCRAM-SHA-1-PLUS", "SCRAM-SHA-256-PLUS"])
@pytest.mark.parametrize(
    ("cb_name", "max_version"),
    [("tls-server-end-point", None), ("tls-server-end-point", ssl.TLSVersion.TLSv1_2), ("tls-unique", ssl.TLSVersion.TLSv1_2)],
)
async def test_scramp_plus(
    nursery: trio.Nursery, certs: Certs, cfg: SessionConfig, mech: str, cb_name: str, max_version: ssl.TLSVersion | None
) -> None:
    port = await start(nursery, handler(), cfg, ssl_context=certs.server_context())
    c, offered = await tls_client(port, certs, max_version)
    assert offered == "AUTH " + ALL_PLUS
    assert await scramp_login(c, mech, USER, PASSWORD, cb=(cb_name, ssl_object(c))) == "235 2.7.0 nice"
    await c.aclose()
    # Data that is not this connection's is a mismatch (a man in the middle).
    c, _ = await tls_client(port, certs, max_version)
    r = await scramp_login(c, mech, USER, PASSWORD, cb=(cb_name, b"\x01" * 32))
    assert r.startswith("535 5.7.7 channel bindings do not match, potential mitm"), r
    await c.aclose()


async def test_tls_exporter_tls13(nursery: trio.Nursery, certs: Certs, cfg: SessionConfig) -> None:
    port = await start(nursery, handler(), cfg, ssl_context=certs.server_context())
    for mech, h in [("SCRAM-SHA-256-PLUS", "sha256"), ("SCRAM-SHA-1-PLUS", "sha1")]:
        c, _ = await tls_client(port, certs)
        obj = ssl_object(c)
        assert obj.version() == "TLSv1.3"
        data = tlsbinding.channel_binding(obj, "tls-exporter")  # Client side, via OpenSSL.
        sc = ScramClient(USER, PASSWORD, hash_name=h, cb_name="tls-exporter", cb_data=data)
        assert await scram_login(c, mech, sc) == "235 2.7.0 nice"
        await c.aclose()
    # tls-unique is not defined for TLS 1.3.
    c, _ = await tls_client(port, certs)
    r = await c.cmd1("AUTH SCRAM-SHA-256-PLUS " + b64("p=tls-unique,,n=u,r=abcdefgh"))
    assert r.startswith("501 5.5.2 scram: tls-unique not defined for tls 1.3"), r
    await c.aclose()


async def test_downgrade_and_missing_binding_refused_over_tls(nursery: trio.Nursery, certs: Certs, cfg: SessionConfig) -> None:
    port = await start(nursery, handler(), cfg, ssl_context=certs.server_context())
    c, _ = await tls_client(port, certs)
    # "y": the client can bind but believes we cannot, though we offered -PLUS.
    r = await c.cmd1("AUTH SCRAM-SHA-256 " + b64(f"y,,n={USER},r=abcdefgh"))
    assert r.startswith("501 5.5.2 scram: gs2 channel bind flag is y"), r
    r = await c.cmd1("AUTH SCRAM-SHA-256-PLUS " + b64(f"n,,n={USER},r=abcdefgh"))
    assert r.startswith("501 5.5.2 scram: channel binding is required"), r
    # Plain SCRAM without binding still works over TLS.
    assert await scramp_login(c, "SCRAM-SHA-256", USER, PASSWORD) == "235 2.7.0 nice"
    await c.aclose()


async def server_first(port: int, mech: str, user: str) -> dict[str, str]:
    c = await plain_client(port)
    r = await c.cmd1(f"AUTH {mech} " + b64(f"n,,n={user},r=abcdefgh"))
    assert r.startswith("334 "), r
    await c.aclose()
    return dict(a.split("=", 1) for a in base64.b64decode(r[4:]).decode().split(","))


async def test_scram_unknown_user_gets_stable_decoy_salt(nursery: trio.Nursery) -> None:
    cfg = SessionConfig(auth_fail_delay=0, require_tls_for_auth=False, decoy_key=b"k" * 32)
    port = await start(nursery, handler(), cfg)
    for mech, iterations in [("SCRAM-SHA-256", "4096"), ("SCRAM-SHA-1", "8192")]:
        a1 = await server_first(port, mech, "nobody@mox.example")
        a2 = await server_first(port, mech, "nobody@mox.example")
        b = await server_first(port, mech, "other@mox.example")
        assert a1["s"] == a2["s"] != b["s"]
        assert len(base64.b64decode(a1["s"])) == 16
        assert a1["i"] == b["i"] == iterations
    # The exchange ends like a wrong password for a real account.
    c = await plain_client(port)
    assert (await scramp_login(c, "SCRAM-SHA-256", "nobody@mox.example", "x")).startswith(
        "535 5.7.8 bad credentials"
    )
    await c.aclose()
