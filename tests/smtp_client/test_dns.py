"""core.dns against a real DNS responder on loopback."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from core.dns import NULL_MX_ERROR, DNSError, Resolver, parse_ip_literal

RECORDS = {
    "example.org": {
        "MX": ["20 mx3.example.org.", "10 mx1.example.org.", "10 mx2.example.org."],
        "TXT": ['"v=spf1 -all"'],
    },
    "mx1.example.org": {"A": ["127.0.0.11"]},
    "mx2.example.org": {"A": ["127.0.0.12"], "AAAA": ["::1"]},
    "nomx.example": {"A": ["127.0.0.6"], "AAAA": ["fe80::6"]},
    "null.example": {"MX": ["0 ."]},
    "bare.example": {"TXT": ['"nothing else here"']},
    "alias.example": {"CNAME": ["example.org."]},
}


def resolver_for(r: Any, **kw: Any) -> Resolver:
    return Resolver(r.nameservers, port=r.port, timeout=kw.pop("timeout", 1.0), lifetime=2.0, **kw)


async def test_mx_sorted_by_preference_shuffled_within_equal(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    firsts = set()
    for _ in range(30):
        mx = await res.lookup_mx("Example.ORG")
        assert [h.preference for h in mx.hosts] == [10, 10, 20]
        assert mx.hosts[2].host == "mx3.example.org"
        assert {h.host for h in mx.hosts[:2]} == {"mx1.example.org", "mx2.example.org"}
        assert not mx.implicit and not mx.ip_literal
        firsts.add(mx.hosts[0].host)
    # Equal preference must be randomised: both orders seen (p(fail) = 2^-29).
    assert firsts == {"mx1.example.org", "mx2.example.org"}


async def test_implicit_mx_uses_domain_addresses(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    mx = await res.lookup_mx("nomx.example.")
    assert mx.implicit
    assert [(h.host, h.preference, h.ips) for h in mx.hosts] == [
        ("nomx.example", 0, ["127.0.0.6", "fe80::6"])
    ]


async def test_cname_followed_for_mx(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    mx = await res.lookup_mx("alias.example")
    assert sorted(h.host for h in mx.hosts) == [
        "mx1.example.org",
        "mx2.example.org",
        "mx3.example.org",
    ]


async def test_null_mx_is_permanent(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    with pytest.raises(DNSError) as ei:
        await res.lookup_mx("null.example")
    assert ei.value.permanent
    assert str(ei.value) == NULL_MX_ERROR


async def test_nxdomain_is_permanent(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    with pytest.raises(DNSError) as ei:
        await res.lookup_mx("nonexistent.example")
    assert ei.value.permanent and ei.value.not_found
    assert str(ei.value) == "recipient domain nonexistent.example does not exist"


async def test_no_mx_and_no_address_is_permanent(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    with pytest.raises(DNSError) as ei:
        await res.lookup_mx("bare.example")
    assert ei.value.permanent
    assert "no mx record and no a/aaaa records" in str(ei.value)


async def test_timeout_is_temporary_and_bounded(dns_responder: Any) -> None:
    r = dns_responder(RECORDS, mode="silent")
    res = Resolver(r.nameservers, port=r.port, timeout=0.2, lifetime=0.5)
    # A silent server never answers: the lookup ends by its own lifetime.
    with trio.fail_after(15), pytest.raises(DNSError) as ei:
        await res.lookup_mx("example.org")
    assert not ei.value.permanent
    assert str(ei.value) == "dns lookup error: mx lookup for example.org: i/o timeout"
    assert r.queries, "the responder must have seen the query"


async def test_servfail_is_temporary(dns_responder: Any) -> None:
    r = dns_responder(RECORDS, servfail_names=["example.org"])
    res = resolver_for(r)
    with pytest.raises(DNSError) as ei:
        await res.lookup_mx("example.org")
    assert not ei.value.permanent
    assert str(ei.value) == "dns lookup error: mx lookup for example.org: server failure"
    # Other names on the same server still work.
    assert (await res.lookup_mx("nomx.example")).implicit


async def test_truncated_udp_falls_back_to_tcp(dns_responder: Any) -> None:
    r = dns_responder(RECORDS, truncate_udp=True)
    mx = await resolver_for(r).lookup_mx("example.org")
    assert len(mx.hosts) == 3
    assert ("example.org.", "MX", "tcp") in r.queries


async def test_ip_literal_needs_no_dns(dns_responder: Any) -> None:
    r = dns_responder(RECORDS)
    res = resolver_for(r)
    mx = await res.lookup_mx("[127.0.0.9]")
    assert mx.ip_literal and [(h.host, h.ips) for h in mx.hosts] == [("127.0.0.9", ["127.0.0.9"])]
    mx6 = await res.lookup_mx("[IPv6:::1]")
    assert mx6.hosts[0].ips == ["::1"]
    assert r.queries == []
    with pytest.raises(DNSError) as ei:
        await res.lookup_mx("[999.1.1.1]")
    assert ei.value.permanent
    assert parse_ip_literal("example.org") is None


async def test_lookup_ips_families_and_order(dns_responder: Any) -> None:
    r = dns_responder(RECORDS)
    assert await resolver_for(r).lookup_ips("mx2.example.org") == ["127.0.0.12", "::1"]
    assert await resolver_for(r, prefer_ipv6=True).lookup_ips("mx2.example.org") == [
        "::1",
        "127.0.0.12",
    ]
    assert await resolver_for(r).lookup_ips("127.0.0.3") == ["127.0.0.3"]


async def test_lookup_ips_unknown_host_is_temporary_not_found(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    with pytest.raises(DNSError) as ei:
        await res.lookup_ips("mx9.example.org")
    # An MX target can be fixed by the domain owner before retries run out.
    assert not ei.value.permanent and ei.value.not_found
    assert str(ei.value) == 'looking up "mx9.example.org.": no such host'


async def test_invalid_domain_is_permanent(dns_responder: Any) -> None:
    res = resolver_for(dns_responder(RECORDS))
    with pytest.raises(DNSError) as ei:
        await res.lookup_mx("a" * 64 + ".example")
    assert ei.value.permanent
