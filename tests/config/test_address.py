"""Address parsing and normalisation."""

from __future__ import annotations

import pytest

from core.address import Address, domain_to_ascii, parse_address, parse_domain


def test_basic_and_normalisation() -> None:
    a = parse_address("Mox+App@LocalHost")
    assert a == Address("Mox+App", "localhost")
    assert str(a) == "Mox+App@localhost"


def test_idna() -> None:
    a = parse_address("kunde@XN--BCHER-KVA.example")
    assert a.domain == "bücher.example"
    assert a.domain_ascii == "xn--bcher-kva.example"
    assert parse_address("kunde@BÜCHER.example").domain == "bücher.example"
    assert domain_to_ascii("Bücher.Example") == "xn--bcher-kva.example"
    assert parse_domain("example.com.") == "example.com"


def test_unicode_localpart_kept() -> None:
    a = parse_address("Møx@mox.example")
    assert a.localpart == "Møx" and str(a) == "Møx@mox.example"


def test_quoted_localpart() -> None:
    a = parse_address('"a b\\"c"@example.com')
    assert a.localpart == 'a b"c'
    assert str(a) == '"a b\\"c"@example.com'
    assert parse_address('"plain"@example.com') == Address("plain", "example.com")
    assert str(parse_address('"plain"@example.com')) == "plain@example.com"


@pytest.mark.parametrize(
    ("s", "fragment"),
    [
        ("", "empty address"),
        ("nobody", "missing @"),
        ("@example.com", "empty localpart"),
        ("a b@example.com", "invalid character"),
        ("a@", "empty domain"),
        ("a@exa mple.com", "invalid character"),
        ("a@-bad.com", "hyphen"),
        ("a@example..com", "empty label"),
        ('"unterminated@example.com', "unterminated"),
        ("a@xn--zz.example", "IDNA"),
    ],
)
def test_errors(s: str, fragment: str) -> None:
    with pytest.raises(ValueError) as ei:
        parse_address(s)
    assert fragment in str(ei.value)
