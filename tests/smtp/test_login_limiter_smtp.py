"""SMTP AUTH and the failed-login limiter over real sockets: no way around it.

An attacker with an account of their own must not get more than the IP's
budget (10 a minute) of guesses at another account's password, whether by
interleaving good logins, by opening many connections first, or by staying
on one connection.
"""

from __future__ import annotations

import trio

from core.loginlimit import LoginLimiter
from core.smtp.handler import MemoryHandler
from core.smtp.limits import ConnectionLimits
from core.smtp.session import SessionConfig
from tests.smtp.helpers import RawClient, plain_b64, start

TOO_MANY = "421 4.7.0 too many auth failures"


def handler() -> MemoryHandler:
    return MemoryHandler(
        "submission",
        logins={"attacker@mox.example": ("attacker", "mine1234"), "victim@mox.example": ("victim", "secret99")},
        iterations=16,
    )


async def serve(nursery: trio.Nursery) -> tuple[int, LoginLimiter]:
    limiter = LoginLimiter()
    cfg = SessionConfig(auth_fail_delay=0, require_tls_for_auth=False)
    port = await start(nursery, handler(), cfg, limits=ConnectionLimits(auth_failures=limiter))
    return port, limiter


async def greeted(port: int) -> tuple[RawClient, str]:
    c = await RawClient.connect(port)
    first = (await c.reply())[0]
    if first.startswith("220 "):
        await c.cmd("EHLO x")
    return c, first


async def attempt(port: int, user: str, password: str) -> str:
    """One AUTH PLAIN on a fresh connection; the answer (or the refusal at connect)."""
    c, first = await greeted(port)
    try:
        if not first.startswith("220 "):
            return first
        return await c.cmd1("AUTH PLAIN " + plain_b64(user, password))
    finally:
        await c.aclose()


async def test_good_logins_do_not_forgive_guesses_at_another_account(nursery: trio.Nursery) -> None:
    port, _ = await serve(nursery)
    guesses = 0
    refused = False
    for round_ in range(6):
        for i in range(8):
            r = await attempt(port, "victim@mox.example", f"guess{round_}-{i}")
            if r.startswith(TOO_MANY):
                refused = True
                break
            assert r.startswith("535 5.7.8 bad user/pass"), r
            guesses += 1
        if refused:
            break
        r = await attempt(port, "attacker@mox.example", "mine1234")
        if r.startswith(TOO_MANY):
            refused = True
            break
        assert r == "235 2.7.0 nice"
    assert refused
    assert guesses == 10


async def test_connections_opened_first_share_the_budget(nursery: trio.Nursery) -> None:
    port, _ = await serve(nursery)
    clients = []
    for _ in range(30):
        c, first = await greeted(port)
        assert first.startswith("220 ")
        clients.append(c)
    answers = []
    for i, c in enumerate(clients):
        r = await c.cmd1("AUTH PLAIN " + plain_b64("victim@mox.example", f"guess{i}"))
        answers.append(r)
        if r.startswith(TOO_MANY):
            assert await c.read_eof() == b""  # Closed after the 421.
        await c.aclose()
    assert sum(a.startswith("535 ") for a in answers) == 10
    assert all(a.startswith(TOO_MANY) for a in answers[10:])


async def test_one_connection_cannot_keep_guessing(nursery: trio.Nursery) -> None:
    port, limiter = await serve(nursery)
    c, _ = await greeted(port)
    for i in range(10):
        assert (await c.cmd1("AUTH PLAIN " + plain_b64("victim@mox.example", f"g{i}"))).startswith("535 ")
    # The 11th attempt, even with the right password, is refused and the connection closed.
    assert (await c.cmd1("AUTH PLAIN " + plain_b64("victim@mox.example", "secret99"))).startswith(TOO_MANY)
    assert await c.read_eof() == b""
    await c.aclose()
    assert not limiter.allowed("127.0.0.1")


async def test_owner_login_forgives_own_failures(nursery: trio.Nursery) -> None:
    port, limiter = await serve(nursery)
    for i in range(9):
        assert (await attempt(port, "victim@mox.example", f"typo{i}")).startswith("535 ")
    assert await attempt(port, "victim@mox.example", "secret99") == "235 2.7.0 nice"
    for _ in range(10):
        assert limiter.allowed("127.0.0.1")
        limiter.failed("127.0.0.1")
    assert not limiter.allowed("127.0.0.1")
