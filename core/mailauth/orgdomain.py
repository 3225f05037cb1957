"""Organizational domains (RFC 7489 §3.2) from the Public Suffix List.

The list comes from the ``publicsuffixlist`` package, which ships a recent
copy and is loaded from that file (no network). As in mox, a name under a
TLD the list does not know has the TLD as its public suffix (the implicit
``*`` rule), and a name that is itself a public suffix is its own
organizational domain.
"""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList


@functools.cache
def _list() -> PublicSuffixList:
    return PublicSuffixList()


def organizational_domain(domain: str) -> str:
    """The registrable domain of ``domain`` (lower-case ASCII, no trailing dot)."""
    d = domain.lower().rstrip(".")
    return _list().privatesuffix(d) or d


def is_public_suffix(domain: str) -> bool:
    """Whether ``domain`` is a public suffix (a TLD or e.g. ``co.uk``)."""
    d = domain.lower().rstrip(".")
    return _list().privatesuffix(d) is None
