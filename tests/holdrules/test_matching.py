"""Rule matching: every set condition must agree (AND), an empty rule matches all."""

from __future__ import annotations

import pytest

from plugins.holdrules.rules import (
    HoldRule,
    HoldRuleError,
    RuleDomain,
    any_rule_matches,
    make_rule,
    parse_rule_domain,
    rule_matches,
)

from .helpers import entry

MSG = entry(sender="mox@localhost", rcpt="user@example.org", account="mox")

CASES = [
    # (account, senderdom, recipientdom) -> matches MSG?
    (("", "", ""), True),
    (("mox", "", ""), True),
    (("other", "", ""), False),
    (("", "localhost", ""), True),
    (("", "example.org", ""), False),
    (("", "", "example.org"), True),
    (("", "", "localhost"), False),
    (("mox", "localhost", ""), True),
    (("mox", "other.example", ""), False),
    (("other", "localhost", ""), False),
    (("", "localhost", "example.org"), True),
    # mox would hold a new message here (OR); we don't.
    (("", "localhost", "nomatch.example"), False),
    (("mox", "", "example.org"), True),
    (("mox", "", "nomatch.example"), False),
    (("mox", "localhost", "example.org"), True),
    (("mox", "localhost", "nomatch.example"), False),
    (("other", "localhost", "example.org"), False),
    (("mox", "other.example", "example.org"), False),
    # case and IDNA forms of the same domain are the same condition
    (("", "LocalHost", "EXAMPLE.org"), True),
    # a parent domain is a different domain
    (("", "", "org"), False),
    # account names compare exactly
    (("Mox", "", ""), False),
]


@pytest.mark.parametrize(("conds", "expected"), CASES, ids=[str(c[0]) for c in CASES])
def test_and_matching(conds: tuple[str, str, str], expected: bool) -> None:
    rule = make_rule(*conds)
    assert rule_matches(rule, MSG) is expected


def test_empty_rule_is_all_and_matches_anything() -> None:
    rule = make_rule()
    assert rule.is_all
    assert rule_matches(rule, entry(sender="a@b.example", rcpt="c@d.example", account="x"))
    assert not make_rule(account="mox").is_all


def test_unicode_and_ascii_forms_match_both_ways() -> None:
    idn = entry(sender="mox@localhost", rcpt="user@Bücher.example")
    assert idn.recipient_domain == "xn--bcher-kva.example"
    for cond in ("bücher.example", "BÜCHER.example", "xn--bcher-kva.example"):
        assert rule_matches(make_rule(recipient_domain=cond), idn), cond
    assert not rule_matches(make_rule(recipient_domain="bucher.example"), idn)
    sender_idn = entry(sender="ü@ünicode.example", rcpt="x@example.org")
    assert rule_matches(make_rule(sender_domain="xn--nicode-2ya.example"), sender_idn)


def test_any_rule_matches_is_or_over_rules() -> None:
    rules = [make_rule(account="nobody"), make_rule(recipient_domain="example.org")]
    assert any_rule_matches(rules, MSG)
    assert not any_rule_matches(rules[:1], MSG)
    assert not any_rule_matches([], MSG)


def test_domains_are_normalised() -> None:
    d = parse_rule_domain("Bücher.Example")
    assert d == RuleDomain(ascii="xn--bcher-kva.example", unicode="bücher.example")
    assert parse_rule_domain("xn--bcher-kva.example") == d
    assert parse_rule_domain("Example.COM") == RuleDomain("example.com", "example.com")
    assert parse_rule_domain("") == RuleDomain()


@pytest.mark.parametrize(
    "bad", ["example.com.", "a..b", "-a.example", "1.2.3.4", "::1", "[10.0.0.1]", "a b.example"]
)
def test_bad_domains_are_user_errors(bad: str) -> None:
    with pytest.raises(HoldRuleError):
        parse_rule_domain(bad)
    with pytest.raises(HoldRuleError, match="parsing recipient domain"):
        make_rule(recipient_domain=bad)
    with pytest.raises(HoldRuleError, match="parsing sender domain"):
        make_rule(sender_domain=bad)


def test_json_shape_as_mox() -> None:
    rule = HoldRule(
        id=3,
        account="mox",
        sender_domain=parse_rule_domain("localhost"),
        recipient_domain=parse_rule_domain("bücher.example"),
    )
    assert rule.to_json() == {
        "ID": 3,
        "Account": "mox",
        "SenderDomain": {"ASCII": "localhost", "Unicode": ""},
        "RecipientDomain": {"ASCII": "xn--bcher-kva.example", "Unicode": "bücher.example"},
        "SenderDomainStr": "localhost",
        "RecipientDomainStr": "bücher.example",
    }
    assert HoldRule().to_json()["SenderDomainStr"] == ""
