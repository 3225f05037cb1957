"""Our SPF against the open RFC 7208 test suite (see tests/mailauth/spfsuite.py).

Every case passes except those in ``KNOWN_DIFFERENT``, each with its reason;
``test_suite_count`` pins how many cases ran so the suite cannot shrink unnoticed.
"""

from __future__ import annotations

import pytest

from core.mailauth import spf
from tests.mailauth.spfsuite import Case, ZoneLookup, load_cases

CASES = load_cases()
#: Suite cases our SPF answers differently, with the reason.
KNOWN_DIFFERENT: dict[str, str] = {
    "v-macro-ip6": (
        "explanation text only: the suite expects %{i} of an IPv6 address given in upper case "
        "as upper-case nibbles; we write lower-case nibbles as RFC 7208 section 7.4's example "
        "does (DNS names are case-insensitive, so evaluation is the same)"
    ),
}


async def _run(case: Case) -> spf.Outcome:
    mailfrom = case.mailfrom
    if not mailfrom:
        sender, domain = f"postmaster@{case.helo}", case.helo
    else:
        local, at, domain = mailfrom.rpartition("@")
        if not at:
            local, domain = "postmaster", mailfrom
        sender = f"{local or 'postmaster'}@{domain}"
    return await spf.check_host(ZoneLookup(case.zones), case.host, domain, sender, case.helo)


def test_suite_count() -> None:
    assert len(CASES) == 203, len(CASES)
    assert set(KNOWN_DIFFERENT) <= {c.name for c in CASES}


async def test_known_different_still_differs_only_in_case() -> None:
    case = next(c for c in CASES if c.name == "v-macro-ip6")
    out = await _run(case)
    assert out.status == "fail"
    assert case.explanation is not None and out.explanation.lower() == case.explanation.lower()


@pytest.mark.parametrize("case", [c for c in CASES if c.name not in KNOWN_DIFFERENT], ids=lambda c: c.id)
async def test_rfc7208_case(case: Case) -> None:
    out = await _run(case)
    assert out.status in case.results, (out, case.results)
    if case.explanation is not None:
        expl = out.explanation or "DEFAULT"
        assert expl == case.explanation
