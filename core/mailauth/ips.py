"""Parsed IP addresses, memoized: the same peer addresses recur message after message.

``ipaddress.ip_address`` costs microseconds per call (and an exception for
a non-address), and one delivery asks several times about the same few
strings (the peer for iprev, SPF and the own-domain answers, the EHLO name, the
addresses a sender's records list). The parsed objects are immutable, so
sharing them is safe.
"""

from __future__ import annotations

import functools
import ipaddress

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@functools.lru_cache(maxsize=4096)
def parse_ip(text: str) -> IPAddress:
    """``ipaddress.ip_address(text)``; raises ValueError for anything else."""
    return ipaddress.ip_address(text)


@functools.lru_cache(maxsize=4096)
def is_ip(text: str) -> bool:
    """Whether ``text`` is an IP address (no brackets, no ``IPv6:`` prefix)."""
    try:
        parse_ip(text)
    except ValueError:
        return False
    return True


@functools.lru_cache(maxsize=4096)
def network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """``ipaddress.ip_network(text, strict=False)``."""
    return ipaddress.ip_network(text, strict=False)
