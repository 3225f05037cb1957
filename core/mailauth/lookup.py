"""The DNS questions mail authentication asks, as one small async interface.

SPF, DKIM and DMARC need TXT, A, AAAA, MX and PTR answers and must tell
"nothing there" (NXDOMAIN or no records: an empty list) from "could not
ask" (:class:`TempError`). :class:`ResolverLookup` answers through
``core.dns.Resolver`` (dnspython on trio, with its timeouts);
:class:`StaticLookup` answers from fixed records in front of another lookup,
which is how a server vouches for its own domains
(:class:`core.services.OwnDomainAnswers`) and how the SPF test suite's
zones are served; :class:`NoRecords` knows nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import trio

from core.dns import DNSError, Resolver
from core.mailauth.ips import parse_ip

#: Names longer than this cannot be asked (RFC 1035 §2.3.4); treated as nonexistent.
MAX_NAME = 253


class TempError(Exception):
    """A lookup failed for a reason that may pass (timeout, SERVFAIL)."""


class NotCached(Exception):
    """A :class:`CachedOnly` lookup has no fresh answer; the caller asks the real lookup."""


class Lookup(Protocol):
    """Async DNS for mail authentication. Names are ASCII, without trailing dot."""

    async def txt(self, name: str) -> list[str]: ...

    async def a(self, name: str) -> list[str]: ...

    async def aaaa(self, name: str) -> list[str]: ...

    async def mx(self, name: str) -> list[tuple[int, str]]: ...

    async def ptr(self, ip: str) -> list[str]: ...


def reverse_name(ip: str) -> str:
    """The in-addr.arpa / ip6.arpa name for ``ip``, without trailing dot."""
    return parse_ip(ip).reverse_pointer


def _valid_name(name: str) -> bool:
    labels = name.rstrip(".").split(".")
    return len(name) <= MAX_NAME and all(0 < len(label) <= 63 for label in labels)


class ResolverLookup:
    """:class:`Lookup` through ``core.dns.Resolver``, keeping answers for their TTL.

    The same sender's records are asked for message after message; a dict
    lookup is much cheaper than a query, even one a caching resolver
    answers. Negative answers are kept only when the server sent an SOA
    (RFC 2308); failures are never kept. Bounded: the cache is emptied when
    it reaches :data:`CACHE_MAX` entries, and nothing is kept longer than
    :data:`CACHE_TTL_MAX` seconds.
    """

    CACHE_MAX = 10000
    CACHE_TTL_MAX = 3600

    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver
        self._cache: dict[tuple[str, str], tuple[float, Any]] = {}
        self.cached_only = CachedOnly(self)

    def peek(self, name: str, rdtype: str, convert: Callable[[list[Any]], Any]) -> Any:
        """The answer :meth:`_cached` would give without asking DNS; :class:`NotCached` if none."""
        name = name.rstrip(".").lower()
        if not _valid_name(name):
            return convert([])
        hit = self._cache.get((name, rdtype))
        if hit is not None and hit[0] > trio.current_time():
            return hit[1]
        raise NotCached(name)

    async def _cached(self, name: str, rdtype: str, convert: Callable[[list[Any]], Any]) -> Any:
        try:
            return self.peek(name, rdtype, convert)
        except NotCached:
            pass
        name = name.rstrip(".").lower()
        key = (name, rdtype)
        now = trio.current_time()
        try:
            records, ttl = await self.resolver.records_ttl(name, rdtype)
        except DNSError as exc:
            if not (exc.not_found or exc.permanent):
                raise TempError(str(exc)) from None
            records, ttl = [], exc.negative_ttl
        value = convert(records)
        if ttl > 0:
            if len(self._cache) >= self.CACHE_MAX:
                self._cache.clear()
            self._cache[key] = (now + min(ttl, self.CACHE_TTL_MAX), value)
        return value

    async def txt(self, name: str) -> list[str]:
        return await self._cached(name, "TXT", _txt_strings)  # type: ignore[no-any-return]

    async def a(self, name: str) -> list[str]:
        return await self._cached(name, "A", _addresses)  # type: ignore[no-any-return]

    async def aaaa(self, name: str) -> list[str]:
        return await self._cached(name, "AAAA", _addresses)  # type: ignore[no-any-return]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return await self._cached(name, "MX", _mx_hosts)  # type: ignore[no-any-return]

    async def ptr(self, ip: str) -> list[str]:
        return await self._cached(reverse_name(ip), "PTR", _ptr_names)  # type: ignore[no-any-return]


class CachedOnly:
    """A :class:`ResolverLookup`'s cached answers as a :class:`Lookup` that never waits.

    A question whose answer is not cached raises :class:`NotCached`. Checks
    run through it complete inline when the sender's records are known
    (the common case: the same senders write again and again), which saves
    starting a task per check; a check that hits :class:`NotCached` is run
    again with the real lookup.
    """

    def __init__(self, base: ResolverLookup) -> None:
        self.base = base

    async def txt(self, name: str) -> list[str]:
        return self.base.peek(name, "TXT", _txt_strings)  # type: ignore[no-any-return]

    async def a(self, name: str) -> list[str]:
        return self.base.peek(name, "A", _addresses)  # type: ignore[no-any-return]

    async def aaaa(self, name: str) -> list[str]:
        return self.base.peek(name, "AAAA", _addresses)  # type: ignore[no-any-return]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return self.base.peek(name, "MX", _mx_hosts)  # type: ignore[no-any-return]

    async def ptr(self, ip: str) -> list[str]:
        return self.base.peek(reverse_name(ip), "PTR", _ptr_names)  # type: ignore[no-any-return]


def _txt_strings(records: list[Any]) -> list[str]:
    return [b"".join(rr.strings).decode("utf-8", "replace") for rr in records]


def _addresses(records: list[Any]) -> list[str]:
    return [rr.address for rr in records]


def _mx_hosts(records: list[Any]) -> list[tuple[int, str]]:
    return [(int(rr.preference), rr.exchange.to_text(omit_final_dot=True).lower()) for rr in records]


def _ptr_names(records: list[Any]) -> list[str]:
    return [rr.target.to_text(omit_final_dot=True).lower() for rr in records]


class StaticLookup:
    """Fixed TXT records for some names, everything else from ``fallback``.

    Used by a development server that answers the SPF and DKIM questions
    for its own domains itself (as mox does in its local mode), so mail it
    sends to itself authenticates.
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


class NoRecords:
    """A :class:`Lookup` that knows nothing (mox's empty mock resolver)."""

    async def txt(self, name: str) -> list[str]:
        return []

    async def a(self, name: str) -> list[str]:
        return []

    async def aaaa(self, name: str) -> list[str]:
        return []

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return []

    async def ptr(self, ip: str) -> list[str]:
        return []
