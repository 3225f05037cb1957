"""The failed-login limiter: one per server, shared by every protocol that takes passwords.

SMTP AUTH, webapi Basic auth and (later) the web interface logins check and
feed the same object (``PluginContext.login_limiter``), so guessing over one
protocol uses up the budget of all of them.

Failures count per IP class, with mox's numbers (per minute 10/30/90, per
day 50/150/450 for the address, its /26 and its /21; IPv6 /64, /48, /32),
and per target account (per minute 30, per day 450: the /21 numbers, so the
account limit only binds when guesses come from many networks). Windows are
fixed, as in mox: all counts of a window reset when its index changes.

A successful login forgives only the failures that this IP made against the
account that just logged in. mox forgives the IP's whole count, which lets
anyone with one account interleave good logins with guesses at another
account's password without limit; here failures against other accounts (and
against unknown user names) stay counted.

The account limit makes a lock-out possible: guesses from many networks can
use up an account's budget, and then even its owner is refused until the
window ends. That is the price of stopping distributed guessing; the
minute window bounds the common case.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.smtp.limits import IPLike, ip_classes

#: (window seconds, limits for the address and its two enclosing networks).
IP_WINDOWS: tuple[tuple[int, tuple[int, int, int]], ...] = (
    (60, (10, 30, 90)),
    (24 * 3600, (50, 150, 450)),
)
#: Per target account, for the same windows.
ACCOUNT_LIMITS: tuple[int, ...] = (30, 450)


@dataclass
class _Window:
    seconds: int
    ip_limits: tuple[int, int, int]
    account_limit: int
    index: int = -1
    # Keys: ("ip", j, network), ("acct", name), ("pair", address, name).
    counts: dict[tuple[str, ...], int] = field(default_factory=dict)


class LoginLimiter:
    """Failed-login counts per IP class and per account; thread-safe."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        ip_windows: tuple[tuple[int, tuple[int, int, int]], ...] = IP_WINDOWS,
        account_limits: tuple[int, ...] = ACCOUNT_LIMITS,
    ) -> None:
        if len(ip_windows) != len(account_limits):
            raise ValueError("one account limit per window")
        self._windows = [
            _Window(sec, lim, acc) for (sec, lim), acc in zip(ip_windows, account_limits, strict=True)
        ]
        self._clock = clock
        self._lock = threading.Lock()

    def _current(self, w: _Window, now: float) -> dict[tuple[str, ...], int]:
        idx = int(now) // w.seconds
        if idx != w.index:
            w.index = idx
            w.counts = {}
        return w.counts

    def allowed(self, ip: IPLike, account: str = "", now: float | None = None) -> bool:
        """Whether one more attempt from ``ip`` (against ``account``, when known) may be made."""
        t = self._clock() if now is None else now
        nets = ip_classes(ip)
        with self._lock:
            for w in self._windows:
                counts = self._current(w, t)
                for j in range(3):
                    if counts.get(("ip", str(j), nets[j]), 0) >= w.ip_limits[j]:
                        return False
                if account and counts.get(("acct", account), 0) >= w.account_limit:
                    return False
        return True

    def failed(self, ip: IPLike, account: str = "", now: float | None = None) -> None:
        """Count a failed attempt; ``account`` is the target account if the user name is known."""
        t = self._clock() if now is None else now
        nets = ip_classes(ip)
        with self._lock:
            for w in self._windows:
                counts = self._current(w, t)
                keys: list[tuple[str, ...]] = [("ip", str(j), nets[j]) for j in range(3)]
                if account:
                    keys += [("acct", account), ("pair", nets[0], account)]
                for k in keys:
                    counts[k] = counts.get(k, 0) + 1

    def succeeded(self, ip: IPLike, account: str, now: float | None = None) -> None:
        """``account`` logged in from ``ip``: forgive that pair's failures, and no others.

        The account's own count is cleared too: its owner just proved the password.
        """
        t = self._clock() if now is None else now
        nets = ip_classes(ip)
        with self._lock:
            for w in self._windows:
                counts = self._current(w, t)
                n = counts.pop(("pair", nets[0], account), 0)
                counts.pop(("acct", account), None)
                if not n:
                    continue
                for j in range(3):
                    k = ("ip", str(j), nets[j])
                    left = counts.get(k, 0) - n
                    if left > 0:
                        counts[k] = left
                    else:
                        counts.pop(k, None)
