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
