"""authenticate(): iprev, the hosts file, and DNS that never answers."""

from __future__ import annotations

from pathlib import Path

import trio

from core.mailauth import analyze
from core.mailauth.hosts import parse_hosts
from core.mailauth.lookup import TempError
from tests.dkim.helpers import ed_key
from tests.mailauth.test_dkim_verify import MESSAGE, dkimpy_sign


class Zone:
    def __init__(self, ptr: dict[str, list[str]] | None = None, a: dict[str, list[str]] | None = None,
                 hang: bool = False, fail: bool = False) -> None:
        self.ptrs, self.addrs, self.hang, self.fail = ptr or {}, a or {}, hang, fail

    async def _wait(self) -> None:
        if self.hang:
            await trio.sleep_forever()
        if self.fail:
            raise TempError("server failure")

    async def txt(self, name: str) -> list[str]:
        await self._wait()
        return []

    async def a(self, name: str) -> list[str]:
        await self._wait()
        return self.addrs.get(name, [])

    async def aaaa(self, name: str) -> list[str]:
        return []

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return []

    async def ptr(self, ip: str) -> list[str]:
        await self._wait()
        return self.ptrs.get(ip, [])


def test_parse_hosts() -> None:
    by_ip, by_name = parse_hosts("127.0.0.1 localhost loopy # c\n::1 ip6-localhost\nbad line\n# x\n")
    assert by_ip == {"127.0.0.1": ["localhost", "loopy"], "::1": ["ip6-localhost"]}
    assert by_name["loopy"] == ["127.0.0.1"]


async def test_iprev() -> None:
    zone = Zone({"192.0.2.1": ["a.example", "b.example"]}, {"b.example": ["192.0.2.1"]})
    assert await analyze.iprev(zone, "192.0.2.1") == ("pass", "b.example")
    assert await analyze.iprev(Zone({"192.0.2.1": ["a.example"]}), "192.0.2.1") == ("fail", "")
    assert await analyze.iprev(Zone(), "192.0.2.9") == ("permerror", "")
    assert await analyze.iprev(Zone(fail=True), "192.0.2.9") == ("temperror", "")


async def test_dns_that_never_answers_gives_temperror(tmp_path: Path) -> None:
    path = tmp_path / "m.eml"
    path.write_bytes(dkimpy_sign(MESSAGE, ed_key()))
    inp = analyze.Inputs(remote_ip="192.0.2.1", helo="mail.example.org", mail_from_localpart="joe",
                         mail_from_domain="example.org", msg_from_domain="example.org",
                         hostname="mx.example", path=str(path), size=path.stat().st_size)
    with trio.fail_after(10):
        auth = await analyze.authenticate(Zone(hang=True), inp, check_timeout=0.3)
    assert auth.spf.result == "temperror" and auth.iprev == "temperror"
    assert auth.dkim_error and auth.dmarc is not None and auth.dmarc.status == "temperror"
    assert not (auth.mail_from_validated or auth.msg_from_validated or auth.dmarc_reject)
    header = auth.auth_results().decode()
    assert "spf=temperror" in header and "dmarc=temperror" in header


def _results(auth: analyze.Authentication) -> tuple[object, ...]:
    return (auth.iprev, auth.iprev_name, auth.spf.header(), [(r.status, r.error) for r in auth.dkim],
            auth.dmarc and (auth.dmarc.status, auth.dmarc.domain), auth.mail_from_validated,
            auth.msg_from_validated, auth.dkim_domains)


async def test_cached_answers_give_the_same_results_without_asking(tmp_path: Path) -> None:
    """With every answer cached the checks finish without DNS; with some missing, those are asked."""
    import base64

    from cryptography.hazmat.primitives import serialization

    from core.dns import Resolver
    from core.mailauth.lookup import CachedOnly, NotCached, ResolverLookup
    from tests.support.dnsresponder import DNSResponder

    key = ed_key()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    zone = {
        "example.org": {"TXT": ['"v=spf1 ip4:192.0.2.0/24 -all"']},
        "sel._domainkey.example.org": {"TXT": [f'"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode()}"']},
        "_dmarc.example.org": {"TXT": ['"v=DMARC1; p=reject"']},
        "1.2.0.192.in-addr.arpa": {"PTR": ["mail.example.org."]},
        "mail.example.org": {"A": ["192.0.2.1"]},
    }
    path = tmp_path / "m.eml"
    path.write_bytes(dkimpy_sign(MESSAGE, key))
    inp = analyze.Inputs(remote_ip="192.0.2.1", helo="mail.example.org", mail_from_localpart="joe",
                         mail_from_domain="example.org", msg_from_domain="example.org",
                         hostname="mx.example", path=str(path), size=path.stat().st_size)
    with DNSResponder(zone) as dns:
        lookup = ResolverLookup(Resolver(["127.0.0.1"], port=dns.port, timeout=2, lifetime=4))
        assert isinstance(lookup.cached_only, CachedOnly)
        try:
            await lookup.cached_only.txt("example.org")
            raise AssertionError("nothing is cached yet")
        except NotCached:
            pass
        cold = await analyze.authenticate(lookup, inp)
        assert (cold.iprev, cold.spf.result, cold.dmarc and cold.dmarc.status) == ("pass", "pass", "pass")
        assert [r.status for r in cold.dkim] == ["pass"] and cold.iprev_name == "mail.example.org"
        asked = len(dns.queries)
        assert await lookup.cached_only.txt("example.org") == ["v=spf1 ip4:192.0.2.0/24 -all"]

        warm = await analyze.authenticate(lookup, inp)
        assert _results(warm) == _results(cold)
        assert len(dns.queries) == asked  # all from the cache

        # Only the DMARC record and the PTR forgotten: those two are asked again.
        del lookup._cache[("_dmarc.example.org", "TXT")]
        del lookup._cache[("1.2.0.192.in-addr.arpa", "PTR")]
        partly = await analyze.authenticate(lookup, inp)
        assert _results(partly) == _results(cold)
        assert sorted(q[:2] for q in dns.queries[asked:]) == [
            ("1.2.0.192.in-addr.arpa.", "PTR"), ("_dmarc.example.org.", "TXT")]
