"""The DNS questions mail authentication asks, as one small async interface.

SPF, DKIM and DMARC need TXT, A, AAAA, MX and PTR answers and must tell
"nothing there" (NXDOMAIN or no records: an empty list) from "could not
ask" (:class:`TempError`). :class:`ResolverLookup` answers through
``core.dns.Resolver`` (dnspython on trio, with its timeouts);
:class:`StaticLookup` answers from fixed records in front of another lookup,
which is how localserve vouches for its own domains and how the SPF test
suite's zones are served.
"""

from __future__ import annotations

import ipaddress
from typing import Protocol

from core.dns import DNSError, Resolver

#: Names longer than this cannot be asked (RFC 1035 §2.3.4); treated as nonexistent.
MAX_NAME = 253


class TempError(Exception):
    """A lookup failed for a reason that may pass (timeout, SERVFAIL)."""


class Lookup(Protocol):
    """Async DNS for mail authentication. Names are ASCII, without trailing dot."""

    async def txt(self, name: str) -> list[str]: ...

    async def a(self, name: str) -> list[str]: ...

    async def aaaa(self, name: str) -> list[str]: ...

    async def mx(self, name: str) -> list[tuple[int, str]]: ...

    async def ptr(self, ip: str) -> list[str]: ...


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name for ``ip``, without trailing dot."""
    return ipaddress.ip_address(ip).reverse_pointer


def _valid_name(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return len(name) <= MAX_NAME and all(0 < len(label) <= 63 for label in labels)


class ResolverLookup:
    """:class:`Lookup` through ``core.dns.Resolver``."""

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    async def _records(self, name: str, rdtype: str) -> list[object]:
        name = name.rstrip(".")
        if not _valid_name(name):
            return []
        try:
            return await self.resolver.records(name, rdtype)
        except DNSError as exc:
            if exc.not_found or exc.permanent:
                return []
            raise TempError(str(exc)) from None

    async def txt(self, name: str) -> list[str]:
        out = []
        for rr in await self._records(name, "TXT"):
            data = b"".join(rr.strings)  # type: ignore[attr-defined]
            out.append(data.decode("utf-8", "replace"))
        return out

    async def a(self, name: str) -> list[str]:
        return [rr.address for rr in await self._records(name, "A")]  # type: ignore[attr-defined]

    async def aaaa(self, name: str) -> list[str]:
        return [rr.address for rr in await self._records(name, "AAAA")]  # type: ignore[attr-defined]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return [
            (int(rr.preference), rr.exchange.to_text(omit_final_dot=True).lower())  # type: ignore[attr-defined]
            for rr in await self._records(name, "MX")
        ]

    async def ptr(self, ip: str) -> list[str]:
        return [
            rr.target.to_text(omit_final_dot=True).lower()  # type: ignore[attr-defined]
            for rr in await self._records(reverse_name(ip), "PTR")
        ]


class StaticLookup:
    """Fixed TXT records for some names, everything else from ``fallback``.

    Used by localserve, which answers the SPF and DKIM questions for its own
    domains itself (as mox's localserve does), so mail it sends to itself
    authenticates.
    """

    def __init__(self, txt: dict[str, list[str]], fallback: Lookup) -> None:
        self._txt = {k.lower().rstrip("."): v for k, v in txt.items()}
        self.fallback = fallback

    async def txt(self, name: str) -> list[str]:
        key = name.lower().rstrip(".")
        if key in self._txt:
            return list(self._txt[key])
        return await self.fallback.txt(name)

    async def a(self, name: str) -> list[str]:
        return await self.fallback.a(name)

    async def aaaa(self, name: str) -> list[str]:
        return await self.fallback.aaaa(name)

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return await self.fallback.mx(name)

    async def ptr(self, ip: str) -> list[str]:
        return await self.fallback.ptr(ip)
