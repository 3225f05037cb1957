"""Organizational domains (RFC 7489 §3.2) from the Public Suffix List.

Answers are memoized (the same domains recur message after message). The list comes from the ``publicsuffixlist`` package, which ships a recent
copy and is loaded from that file (no network). As in mox, a name under a
TLD the list does not know has the TLD as its public suffix (the implicit
``*`` rule), and a name that is itself a public suffix is its own
organizational domain.
"""

from __future__ import annotations

import functools

import trio
from publicsuffixlist import PublicSuffixList


@functools.cache
def _list() -> PublicSuffixList:
    return PublicSuffixList()


async def ensure_loaded() -> None:
    """Load the list in a worker thread (parsing it takes a few hundred ms) if not yet loaded."""
    if _list.cache_info().currsize == 0:
        await trio.to_thread.run_sync(_list)


@functools.lru_cache(maxsize=4096)
def organizational_domain(domain: str) -> str:
    """The registrable domain of ``domain`` (lower-case ASCII, no trailing dot)."""
    d = domain.lower().rstrip(".")
    return _list().privatesuffix(d) or d


@functools.lru_cache(maxsize=4096)
def is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is a public suffix (a TLD or e.g. ``co.uk``)."""
    d = domain.lower().rstrip(".")
    return _list().privatesuffix(d) is None
