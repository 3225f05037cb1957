"""Loading mox.conf + domains.conf, reloading domains.conf, address lookups.

mox.conf is read once (changes need a restart). domains.conf is re-read
when its modification time changes, checked once per second as mox does,
by a worker thread of the running server (:mod:`core.config.reloader`); a
broken edit keeps the previous version active and is logged, so an
operator's typo never takes a running server down.

domains.conf and the lookups built from it (domain, destination, login:
precomputed dicts) form one immutable snapshot that a reload replaces in a
single assignment. Readers (SMTP RCPT TO, webapi auth, on the trio thread)
only read the current snapshot: no stat, no parse, no lock.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from core.address import Address, parse_address, parse_domain
from core.config import sconf
from core.config.errors import ConfigError
from core.config.models import Account, Domain, Dynamic, Static
from core.config.validate import (
    DestinationMatch,
    Lookups,
    build_dynamic,
    canonical_localpart,
    fold_localpart,
    validate_static,
)

log = logging.getLogger("moxtrio.config")


def _stat_key(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size)


@dataclass(frozen=True)
class DynamicSnapshot:
    """One version of domains.conf with its lookups and the file's (mtime, size).

    Never changed after it is built: a reload builds a new one. The parsed
    models are shared with every reader and must not be modified.
    """

    dynamic: Dynamic
    lookups: Lookups
    stat: tuple[int, int]


class Config:
    """The running configuration: static part, dynamic snapshot, lookups.

    Safe to use from the trio thread and from worker threads: readers take
    the current snapshot; :meth:`reload_dynamic` (blocking: stat and parse,
    so it runs in a worker thread) swaps in a new one. ``reload_interval``
    is how often the server's reloader checks the file.
    """

    reload_interval: float = 1.0

    def __init__(self, mox_conf_path: Path, static: Static, dynamic: Dynamic, lookups: Lookups,
                 dynamic_stat: tuple[int, int]) -> None:
        self.path = mox_conf_path
        self.dir = mox_conf_path.parent
        self.domains_conf_path = self.dir / "domains.conf"
        self.static = static
        self._snapshot = DynamicSnapshot(dynamic, lookups, dynamic_stat)
        self._lock = threading.Lock()  # one reload at a time; readers never take it
        self.last_reload_error: ConfigError | None = None

    # --- paths ---------------------------------------------------------

    def resolve_path(self, p: str | Path) -> Path:
        """A config-relative path made absolute (relative to mox.conf's directory)."""
        pp = Path(p)
        return pp if pp.is_absolute() else self.dir / pp

    @property
    def data_dir(self) -> Path:
        return self.resolve_path(self.static.DataDir)

    @property
    def plugins(self) -> list[str] | None:
        """mox.conf ``Plugins`` (our extension); ``None`` = all first-party plugins."""
        return None if self.static.Plugins is None else list(self.static.Plugins)

    # --- dynamic reload ------------------------------------------------

    @property
    def snapshot(self) -> DynamicSnapshot:
        """The current domains.conf version; take it once to read dynamic and lookups alike."""
        return self._snapshot

    @property
    def dynamic(self) -> Dynamic:
        """domains.conf as of the last reload (never touches the disk)."""
        return self._snapshot.dynamic

    @property
    def lookups(self) -> Lookups:
        return self._snapshot.lookups

    def reload_dynamic(self, force: bool = False) -> bool:
        """Re-read domains.conf if its mtime/size changed (or ``force``). Blocking.

        Returns whether a new version was activated. On errors the old
        version stays and the error is logged and kept in ``last_reload_error``.
        """
        with self._lock:
            current = self._snapshot
            try:
                key = _stat_key(self.domains_conf_path)
            except OSError as e:
                log.error("config: cannot stat %s, keeping current config: %s", self.domains_conf_path, e)
                return False
            if key == current.stat and not force:
                return False
            try:
                dynamic = sconf.parse_file(Dynamic, self.domains_conf_path)
                lookups = build_dynamic(dynamic, self.static, str(self.domains_conf_path))
            except ConfigError as e:
                log.error("config: error in changed domains.conf, keeping previous version: %s", e)
                self.last_reload_error = e
                # Don't re-parse the same broken file every second.
                self._snapshot = DynamicSnapshot(current.dynamic, current.lookups, key)
                return False
            except OSError as e:
                log.error("config: cannot read %s, keeping previous version: %s", self.domains_conf_path, e)
                return False
            self._snapshot = DynamicSnapshot(dynamic, lookups, key)
            self.last_reload_error = None
            log.info("config: reloaded %s", self.domains_conf_path)
            return True

    # --- lookups -------------------------------------------------------

    def domain(self, name: str) -> Domain | None:
        """Configured domain by name (case- and IDNA-insensitive)."""
        try:
            norm = parse_domain(name)
        except ValueError:
            return None
        entry = self.lookups.domains.get(norm)
        return entry[1] if entry else None

    def domain_name(self, name: str) -> str | None:
        """The domain's key as written in domains.conf, or None if not configured."""
        try:
            norm = parse_domain(name)
        except ValueError:
            return None
        entry = self.lookups.domains.get(norm)
        return entry[0] if entry else None

    def catchall_separators(self, domain: str) -> list[str]:
        """Effective catchall separators of a domain (empty if none/unknown)."""
        d = self.domain(domain)
        return d.catchall_separators if d is not None else []

    def account(self, name: str) -> Account | None:
        return self.dynamic.Accounts.get(name)

    def canonical_address(self, addr: str | Address) -> Address | None:
        """Address after separator stripping and case folding; None if domain unknown."""
        a = parse_address(addr) if isinstance(addr, str) else addr
        d = self.domain(a.domain)
        if d is None:
            return None
        return Address(canonical_localpart(a.localpart, d), a.domain)

    def lookup_destination(self, addr: str | Address) -> DestinationMatch | None:
        """Which account/destination receives mail for ``addr`` (None: not ours).

        Tries the canonical address, then the domain's ``@domain`` catchall.
        Invalid addresses return None.
        """
        try:
            a = parse_address(addr) if isinstance(addr, str) else addr
        except ValueError:
            return None
        lk = self.lookups
        entry = lk.domains.get(a.domain)
        if entry is None:
            return None
        canon = Address(canonical_localpart(a.localpart, entry[1]), a.domain)
        hit = lk.destinations.get(f"{canon.localpart}@{canon.domain}")
        catchall = False
        if hit is None:
            hit = lk.catchalls.get(a.domain)
            catchall = True
        if hit is None:
            return None
        account, key, dest = hit
        if catchall:
            norm_key = f"@{a.domain}"
        else:
            norm_key = str(canon)
        return DestinationMatch(account, norm_key, dest, dest.mailbox, canon, catchall)

    def account_for_login(self, login: str | Address) -> str | None:
        """Account a login address belongs to, or None.

        Any explicit destination address logs in, also with anything after a
        catchall separator (``mox+app@localhost``), and so do the account's
        FromIDLoginAddresses. A domain catchall (``@domain``) does not make
        arbitrary addresses valid logins.
        """
        try:
            a = parse_address(login) if isinstance(login, str) else login
        except ValueError:
            return None
        lk = self.lookups
        entry = lk.domains.get(a.domain)
        if entry is None:
            return None
        dom = entry[1]
        hit = lk.destinations.get(f"{canonical_localpart(a.localpart, dom)}@{a.domain}")
        if hit is not None:
            return hit[0]
        return lk.fromid_logins.get(f"{fold_localpart(a.localpart, dom)}@{a.domain}")


def load_config(mox_conf_path: str | Path) -> Config:
    """Load and validate mox.conf and the domains.conf next to it.

    Raises :class:`ConfigError`, also for a file that cannot be read (naming
    the file and what refers to it).
    """
    path = Path(mox_conf_path)
    try:
        static = sconf.parse_file(Static, path)
    except OSError as e:
        raise ConfigError(str(path), 0, f"cannot read mox.conf: {e.strerror or e} (choose it with -config or $MOXCONF)") from e
    validate_static(static, str(path))
    dpath = path.parent / "domains.conf"
    try:
        stat = _stat_key(dpath)
        dynamic = sconf.parse_file(Dynamic, dpath)
    except OSError as e:
        raise ConfigError(
            str(dpath), 0, f"cannot read domains.conf: {e.strerror or e} (it belongs next to {path})"
        ) from e
    lookups = build_dynamic(dynamic, static, str(dpath))
    return Config(path, static, dynamic, lookups, stat)
