"""Base addresses and the immediate-block codes."""

from __future__ import annotations

import pytest

from plugins.suppression.base import AddressError, base_localpart, go_lower, parse_recipient
from plugins.suppression.decide import is_immediate_block, short_secode


@pytest.mark.parametrize(
    ("given", "base", "original"),
    [
        ("John.Doe+news@Example.COM", "johndoe@example.com", "John.Doe+news@example.com"),
        ("johndoe-x@example.com", "johndoe@example.com", "johndoe-x@example.com"),
        ("j.o.h.n.d.o.e@example.com", "johndoe@example.com", "j.o.h.n.d.o.e@example.com"),
        ("JOHNDOE+other@example.com", "johndoe@example.com", "JOHNDOE+other@example.com"),
        ('"quoted user"@example.com', '"quoted user"@example.com', '"quoted user"@example.com'),
        ("Ünï.cödé@example.com", "ünïcödé@example.com", "Ünï.cödé@example.com"),
        ("x@bücher.example", "x@bücher.example", "x@bücher.example"),
        ("x@xn--bcher-kva.example", "x@bücher.example", "x@bücher.example"),
        ("a-b+c@x.example", "a@x.example", "a-b+c@x.example"),
        # "+" is cut before "-": the part before the first "+" is then cut at "-".
        ("a+b-c@x.example", "a@x.example", "a+b-c@x.example"),
        # Nothing left of the localpart: quoted empty string, as mox.
        ("+news@x.example", '""@x.example', "+news@x.example"),
    ],
)
def test_base_address_variants(given: str, base: str, original: str) -> None:
    r = parse_recipient(given)
    assert (r.base, r.original) == (base, original)


def test_base_does_not_depend_on_catchall_separator() -> None:
    # mail.example's separator in the test config is "+"; "-" is cut anyway,
    # and "_" (not in the rule) is kept.
    assert parse_recipient("a_b-c@mail.example").base == "a_b@mail.example"


@pytest.mark.parametrize(
    "bad", ["user@[1.2.3.4]", "no-at-sign", "@example.com", "a@", "a b@x.example"]
)
def test_bad_addresses_are_refused(bad: str) -> None:
    with pytest.raises(AddressError):
        parse_recipient(bad)


def test_lowercasing_is_per_character_like_go() -> None:
    # Python's str.lower() turns a final capital sigma into "ς" and U+0130
    # into two characters; Go maps each rune on its own.
    assert go_lower("ΑΣ") == "ασ"
    assert go_lower("\u0130x") == "ix"
    assert base_localpart("J.ΟΣ+x") == "jοσ"


@pytest.mark.parametrize("code", [521, 550, 551, 553, 556])
@pytest.mark.parametrize("secode", ["0.0", "1.1", "7.1", ""])
def test_immediate_codes_with_any_enhanced_code(code: int, secode: str) -> None:
    assert is_immediate_block(code, secode)


@pytest.mark.parametrize("secode", ["1.1", "1.2", "1.3", "1.6", "2.1", "7.1"])
def test_immediate_enhanced_codes_need_5xx(secode: str) -> None:
    assert is_immediate_block(554, secode)
    assert is_immediate_block(552, secode)
    assert not is_immediate_block(451, secode)
    assert not is_immediate_block(421, secode)


@pytest.mark.parametrize(
    ("code", "secode"),
    [(554, "0.0"), (552, "2.2"), (554, "7.0"), (554, "1.0"), (451, "3.0"), (0, "")],
)
def test_not_immediate(code: int, secode: str) -> None:
    assert not is_immediate_block(code, secode)


def test_short_secode() -> None:
    assert short_secode("5.1.1") == "1.1"
    assert short_secode("4.7.30") == "7.30"
    assert short_secode("1.1") == "1.1"
    assert short_secode("") == ""
