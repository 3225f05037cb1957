"""Per-IP limits, with mox's numbers and semantics (its ratelimit package).

Each limiter counts per *IP class*: the exact address and two enclosing
networks (IPv4 /32, /26, /21; IPv6 /64, /48, /32), so one host can't escape a
limit by hopping addresses within its network. Windows are fixed, not
sliding: a window is ``floor(unix_ns / window_ns)`` and all counts reset when
that index changes. A window of ``None`` never resets (used with negative
adds to count concurrent connections).

Limits are in memory and reset on restart, as in mox. Failed logins have
their own limiter, one per server (:mod:`core.loginlimit`).
"""

from __future__ import annotations

import functools
import ipaddress
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from core.loginlimit import LoginLimiter

IPLike = str | ipaddress.IPv4Address | ipaddress.IPv6Address
_V4_PREFIXES = (32, 26, 21)
_V6_PREFIXES = (64, 48, 32)


@functools.lru_cache(maxsize=4096)
def ip_classes(ip: IPLike) -> tuple[str, str, str]:
    """The three masked networks an address counts against (IPv4-mapped -> IPv4).

    Cached: every connection and every webapi request asks for the same few
    client addresses, and building the networks is not free.
    """
    addr = ipaddress.ip_address(ip) if isinstance(ip, str) else ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    prefixes = _V4_PREFIXES if addr.version == 4 else _V6_PREFIXES
    nets = tuple(str(ipaddress.ip_network(f"{addr}/{p}", strict=False)) for p in prefixes)
    return nets[0], nets[1], nets[2]


@dataclass
class _Window:
    seconds: float | None
    limits: tuple[int, int, int]
    index: int = -1
    counts: dict[tuple[int, str], int] = field(default_factory=dict)


class WindowLimiter:
    """Fixed-window counters per IP class; thread-safe (shared with web handlers)."""

    def __init__(
        self,
        windows: Sequence[tuple[float | None, tuple[int, int, int]]],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._windows = [_Window(sec, lim) for sec, lim in windows]
        self._clock = clock
        self._lock = threading.Lock()

    def _index(self, w: _Window, now: float) -> int:
        if w.seconds is None:
            return 0
        return int(now * 1_000_000_000) // int(w.seconds * 1_000_000_000)

    def _check_add(self, add: bool, ip: IPLike, n: int, now: float | None) -> bool:
        t = self._clock() if now is None else now
        keys = ip_classes(ip)
        with self._lock:
            for w in self._windows:
                idx = self._index(w, t)
                if idx != w.index:
                    w.index = idx
                    w.counts = {}
                for j in range(3):
                    if w.counts.get((j, keys[j]), 0) + n > w.limits[j]:
                        return False
            if add:
                for w in self._windows:
                    for j in range(3):
                        k = (j, keys[j])
                        v = w.counts.get(k, 0) + n
                        if v:
                            w.counts[k] = v
                        else:
                            w.counts.pop(k, None)
            return True

    def can_add(self, ip: IPLike, n: int = 1, now: float | None = None) -> bool:
        """Whether adding ``n`` would stay within every limit (nothing is recorded)."""
        return self._check_add(False, ip, n, now)

    def add(self, ip: IPLike, n: int = 1, now: float | None = None) -> bool:
        """Record ``n`` if within limits; returns False (recording nothing) otherwise.

        A negative ``n`` always succeeds (releases a concurrent connection).
        """
        return self._check_add(True, ip, n, now)


def connection_rate_limiter(clock: Callable[[], float] = time.time) -> WindowLimiter:
    """New SMTP connections per minute: 300/900/2700."""
    return WindowLimiter([(60, (300, 900, 2700))], clock)


def connection_count_limiter(clock: Callable[[], float] = time.time) -> WindowLimiter:
    """Concurrent SMTP connections: 30/90/270 (add 1 on accept, -1 on close)."""
    return WindowLimiter([(None, (30, 90, 270))], clock)


@dataclass
class ConnectionLimits:
    """The limiters an SMTP listener consults; share one instance across listeners.

    ``auth_failures`` is the server's failed-login limiter (shared with the
    webapi); None means no failed-login accounting (tests of other things).
    """

    rate: WindowLimiter = field(default_factory=connection_rate_limiter)
    concurrent: WindowLimiter = field(default_factory=connection_count_limiter)
    auth_failures: LoginLimiter | None = None
