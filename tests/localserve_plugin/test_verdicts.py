"""Simulated failures at MAIL FROM, RCPT TO and after DATA."""

from __future__ import annotations

import pytest

from core.dispatch import HookDispatcher
from core.plugin_api import Rejection

from .conftest import MakeCtx


def fail(code: int) -> Rejection:
    return Rejection(
        code, f"{code // 100}.0.0", f"failure with code {code} due to special localpart"
    )


TIMEOUT_MAIL = Rejection(451, "4.3.0", "timing out due to special localpart", timeout=True)
TIMEOUT_DATA = Rejection(451, "4.0.0", "timing out due to special localpart", timeout=True)


async def ask(
    dispatcher: HookDispatcher, ctx: object, hook: str, kind: str, address: str
) -> object:
    return await dispatcher.first(hook, ctx=ctx, listener_kind=kind, address=address)


MAIL_CASES = [
    ("mailfromtemperror@localhost", fail(451)),  # observed: 451 4.0.0
    ("mailfrompermerror@localhost", fail(550)),
    ("mailfrom421@localhost", fail(421)),
    ("mailfrom599@localhost", fail(599)),
    ("mailfrom600@localhost", fail(600)),
    ("mailfromtimeout@localhost", TIMEOUT_MAIL),
    ("mailfrom399@localhost", None),
    ("mailfrom@localhost", None),
    # without the prefix nothing happens at MAIL FROM
    ("usertemperror@localhost", None),
    ("xmailfrompermerror@localhost", None),
    ("", None),
    # case-sensitive
    ("mailfromPERMERROR@localhost", None),
    ("MAILFROMpermerror@localhost", None),
]


@pytest.mark.parametrize(("address", "expected"), MAIL_CASES)
async def test_mail_from(
    make_ctx: MakeCtx, dispatcher: HookDispatcher, address: str, expected: object
) -> None:
    ctx = make_ctx()
    for kind in ("smtp", "submission", "submissions"):
        assert await ask(dispatcher, ctx, "moxtrio_smtp_mail_from", kind, address) == expected


RCPT_CASES = [
    ("rcptto552@localhost", fail(552)),  # observed: 552 5.0.0
    ("rcpttopermerror@example.org", fail(550)),
    ("rcpttotemperror@example.org", fail(451)),
    ("rcptto421@example.org", fail(421)),
    ("rcpttotimeout@slow.example", TIMEOUT_MAIL),
    ("rcptto399@example.org", None),
    ("rcpttook@example.org", None),
    # these fail later, at DATA, not at RCPT
    ("userpermerror@example.org", None),
    ("x421@example.org", None),
    ("usertimeout@example.org", None),
]


@pytest.mark.parametrize(("address", "expected"), RCPT_CASES)
async def test_rcpt_to(
    make_ctx: MakeCtx, dispatcher: HookDispatcher, address: str, expected: object
) -> None:
    ctx = make_ctx()
    for kind in ("smtp", "submission"):
        assert await ask(dispatcher, ctx, "moxtrio_smtp_rcpt_to", kind, address) == expected


DATA_CASES = [
    ("usertemperror@example.org", fail(451)),
    ("userpermerror@example.org", fail(550)),
    ("x421@example.org", fail(421)),
    ("user554@example.org", fail(554)),
    ("data599@example.org", fail(599)),
    ("data600@example.org", fail(600)),  # observed: "600 6.0.0 ..."
    ("data400@example.org", fail(400)),
    ("data399@example.org", None),  # observed: normal delivery
    ("data601@example.org", None),
    ("temperror@example.org", fail(451)),
    ("timeout@example.org", TIMEOUT_DATA),
    ("usertimeout@slow.example", TIMEOUT_DATA),
    ("user+500@example.org", fail(500)),
    ("a-450@example.org", fail(450)),  # "450" after a sign-free dash
    ("a+-45@example.org", None),  # "-45" parses but is out of range
    ("45@example.org", None),  # too short
    ("mox@localhost", None),
    ("other@localhost", None),
    ('"a permerror"@example.org', fail(550)),
    # recipient's localpart triggers at DATA whatever its prefix
    ("rcpttopermerror@example.org", fail(550)),
]


@pytest.mark.parametrize(("address", "expected"), DATA_CASES)
async def test_data_recipient_on_delivery_listener(
    make_ctx: MakeCtx, dispatcher: HookDispatcher, address: str, expected: object
) -> None:
    assert (
        await ask(dispatcher, make_ctx(), "moxtrio_smtp_data_recipient", "smtp", address)
        == expected
    )


async def test_data_recipient_on_submission(make_ctx: MakeCtx, dispatcher: HookDispatcher) -> None:
    ctx = make_ctx()
    hook = "moxtrio_smtp_data_recipient"
    # observed: 550 5.0.0 for subpermerror@other.example at the end of submission DATA
    assert await ask(dispatcher, ctx, hook, "submission", "subpermerror@other.example") == fail(550)
    assert await ask(dispatcher, ctx, hook, "submissions", "sub421@other.example") == fail(421)
    # a timeout on submission answers 4.3.0, on the delivery listener 4.0.0
    assert await ask(dispatcher, ctx, hook, "submission", "subtimeout@x.example") == TIMEOUT_MAIL
    assert await ask(dispatcher, ctx, hook, "smtp", "subtimeout@x.example") == TIMEOUT_DATA
    assert await ask(dispatcher, ctx, hook, "submission", "fine@x.example") is None


async def test_rejection_properties(make_ctx: MakeCtx, dispatcher: HookDispatcher) -> None:
    r = await ask(
        dispatcher, make_ctx(), "moxtrio_smtp_data_recipient", "smtp", "userpermerror@x.example"
    )
    assert isinstance(r, Rejection) and r.permanent and not r.timeout
    r = await ask(
        dispatcher, make_ctx(), "moxtrio_smtp_data_recipient", "smtp", "usertemperror@x.example"
    )
    assert isinstance(r, Rejection) and not r.permanent


@pytest.mark.parametrize(
    ("hook", "address"),
    [
        ("moxtrio_smtp_mail_from", "mailfrompermerror@localhost"),
        ("moxtrio_smtp_mail_from", "mailfromtimeout@localhost"),
        ("moxtrio_smtp_rcpt_to", "rcpttopermerror@example.org"),
        ("moxtrio_smtp_data_recipient", "userpermerror@example.org"),
        ("moxtrio_smtp_data_recipient", "usertimeout@example.org"),
    ],
)
async def test_nothing_when_not_localserve(
    make_ctx: MakeCtx, dispatcher: HookDispatcher, hook: str, address: str
) -> None:
    assert await ask(dispatcher, make_ctx(localserve=True), hook, "smtp", address) is not None
    assert await ask(dispatcher, make_ctx(localserve=False), hook, "smtp", address) is None
