"""Semantic checks after parsing, and the lookup tables built from them.

Parsing only proves the files are well-formed sconf. mox then refuses
configs whose parts don't fit together (a fromid login address on a domain
without catchall separator, both separator forms, unknown DKIM selectors...).
We do the same checks here, once per (re)load, and in the same pass build
the dicts that make address lookups O(1) for SMTP and the webapi.
"""

from __future__ import annotations

import logging
import urllib.parse
from dataclasses import dataclass, field

from core.address import Address, parse_address, parse_domain
from core.config import sconf
from core.config.errors import ConfigError
from core.config.models import Account, Destination, Domain, Dynamic, Listener, Static

log = logging.getLogger("moxtrio.config")


def _err(path: str, obj: object, key: str | None, message: str) -> ConfigError:
    return ConfigError(path, sconf.line_of(obj, key), message, key)


def validate_static(static: Static, path: str) -> None:
    """Check mox.conf on its own (dynamic cross-checks are in :func:`build_dynamic`)."""
    _validate_log_levels(static, path)
    if not static.Listeners:
        log.warning("%s: no listeners configured", path)
    for name, listener in static.Listeners.items():
        _validate_listener(name, listener, static, path)
    if static.Plugins is not None:
        for p in static.Plugins:
            if not p.strip():
                raise _err(path, static, "Plugins", "empty plugin name in Plugins")


def _validate_log_levels(static: Static, path: str) -> None:
    """LogLevel and PackageLogLevels must be levels mox knows (``verbose`` is not one)."""
    from core.mlog import parse_level

    levels = [("LogLevel", "LogLevel", static.LogLevel)] if static.LogLevel else []
    levels += [(f"PackageLogLevels {pkg}", "PackageLogLevels", lvl) for pkg, lvl in static.PackageLogLevels.items()]
    for what, key, level in levels:
        try:
            parse_level(level)
        except ValueError as exc:
            raise ConfigError(path, sconf.line_of(static, key), f"{what}: {exc}", key) from None


def _validate_listener(name: str, listener: Listener, static: Static, path: str) -> None:
    for key in Listener.WEB_SERVICE_KEYS:
        svc = getattr(listener, key)
        if not svc.Enabled or not svc.Path:
            continue
        if not svc.Path.startswith("/"):
            raise _err(
                path,
                svc,
                "Path",
                f'listener "{name}" has {key} with path "{svc.Path}" that must start with a slash',
            )
        if not svc.Path.endswith("/"):
            log.warning(
                "%s: listener %r %s path %r does not end with a slash, adding one",
                path, name, key, svc.Path,
            )
    if listener.TLS is not None and listener.TLS.ACME and listener.TLS.ACME not in static.ACME:
        raise _err(
            path, listener.TLS, "ACME", f'listener "{name}": unknown ACME provider "{listener.TLS.ACME}"'
        )


@dataclass(frozen=True)
class DestinationMatch:
    """Result of :meth:`Config.lookup_destination`.

    ``address`` is the matched destination key in normalised form
    (``mox@localhost`` or, for a catchall, ``@localhost``); ``canonical`` is
    the looked-up address after separator stripping and case folding.
    """

    account: str
    address: str
    destination: Destination
    mailbox: str
    canonical: Address
    catchall: bool = False


@dataclass
class Lookups:
    """Precomputed tables for one version of domains.conf."""

    domains: dict[str, tuple[str, Domain]] = field(default_factory=dict)
    # canonical "localpart@domain" -> (account, destination key as configured, Destination)
    destinations: dict[str, tuple[str, str, Destination]] = field(default_factory=dict)
    # normalised domain -> (account, destination key, Destination)
    catchalls: dict[str, tuple[str, str, Destination]] = field(default_factory=dict)
    # login-only addresses (fromid) in folded form -> account
    fromid_logins: dict[str, str] = field(default_factory=dict)


def canonical_localpart(localpart: str, domain: Domain | None) -> str:
    """mox's CanonicalLocalpart: cut at each separator in order, then lowercase.

    Localparts are lowercased unless the domain is ``LocalpartCaseSensitive``.
    """
    if domain is None:
        return localpart.lower()
    for sep in domain.catchall_separators:
        localpart = localpart.split(sep, 1)[0]
    if not domain.LocalpartCaseSensitive:
        localpart = localpart.lower()
    return localpart


def fold_localpart(localpart: str, domain: Domain) -> str:
    return localpart if domain.LocalpartCaseSensitive else localpart.lower()


def _check_url(path: str, obj: object, what: str, url: str) -> None:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise _err(
            path, obj, "URL", f'{what} url "{url}" must be an absolute http or https url'
        )


def _validate_domain(name: str, dom: Domain, path: str) -> None:
    if dom.LocalpartCatchallSeparator and dom.LocalpartCatchallSeparators:
        raise _err(
            path,
            dom,
            "LocalpartCatchallSeparators",
            f'domain "{name}": cannot have both LocalpartCatchallSeparator and '
            "LocalpartCatchallSeparators",
        )
    seen: set[str] = set()
    for sep in dom.LocalpartCatchallSeparators:
        if sep == "":
            raise _err(path, dom, "LocalpartCatchallSeparators", f'domain "{name}": empty localpart catchall separator')
        if sep in seen:
            raise _err(
                path,
                dom,
                "LocalpartCatchallSeparators",
                f'domain "{name}": duplicate localpart catchall separator "{sep}"',
            )
        seen.add(sep)
    for signame in dom.DKIM.Sign:
        if signame not in dom.DKIM.Selectors:
            raise _err(path, dom.DKIM, "Sign", f'domain "{name}": unknown DKIM selector "{signame}" in Sign')
    for selname, sel in dom.DKIM.Selectors.items():
        if sel.Hash and sel.Hash.lower() not in ("sha256", "sha1"):
            raise _err(path, sel, "Hash", f'domain "{name}": selector "{selname}": unknown hash "{sel.Hash}"')
        if sel.Headers and not any(h.lower() == "from" for h in sel.Headers):
            raise _err(path, sel, "Headers", f'domain "{name}": selector "{selname}": headers must include From')
        if sel.Expiration:
            try:
                sconf.parse_duration(sel.Expiration)
            except ValueError as e:
                raise _err(path, sel, "Expiration", f'domain "{name}": selector "{selname}": {e}') from e


def build_dynamic(dynamic: Dynamic, static: Static, path: str) -> Lookups:
    """Validate domains.conf against mox.conf and build the lookup tables."""
    lk = Lookups()
    for name, dom in dynamic.Domains.items():
        try:
            norm = parse_domain(name)
        except ValueError as e:
            raise _err(path, dynamic, "Domains", f'invalid domain "{name}": {e}') from e
        if norm in lk.domains:
            raise _err(path, dynamic, "Domains", f'duplicate domain "{name}"')
        _validate_domain(name, dom, path)
        lk.domains[norm] = (name, dom)

    transports = static.Transports
    all_routes = list(dynamic.Routes)
    all_routes += [r for d in dynamic.Domains.values() for r in d.Routes]
    all_routes += [r for a in dynamic.Accounts.values() for r in a.Routes]
    for route in all_routes:
        if route.Transport not in transports:
            raise _err(path, route, "Transport", f'route references unknown transport "{route.Transport}"')

    for acc_name, acc in dynamic.Accounts.items():
        _build_account(acc_name, acc, lk, path)

    pm = static.Postmaster.Account
    if pm and pm not in dynamic.Accounts:
        raise _err(path, dynamic, "Accounts", f'postmaster account "{pm}" does not exist')
    return lk


def _build_account(acc_name: str, acc: Account, lk: Lookups, path: str) -> None:
    default_domain: str | None = None
    if acc.Domain:
        try:
            default_domain = parse_domain(acc.Domain)
        except ValueError as e:
            raise _err(path, acc, "Domain", f'account "{acc_name}": invalid domain "{acc.Domain}": {e}') from e
        if default_domain not in lk.domains:
            raise _err(path, acc, "Domain", f'account "{acc_name}": unknown domain "{acc.Domain}"')

    if acc.OutgoingWebhook is not None:
        _check_url(path, acc.OutgoingWebhook, f'account "{acc_name}": outgoing webhook', acc.OutgoingWebhook.URL)
        for ev in acc.OutgoingWebhook.Events:
            if ev not in acc.OutgoingWebhook.EVENTS + acc.OutgoingWebhook.EXTENSION_EVENTS:
                raise _err(
                    path, acc.OutgoingWebhook, "Events",
                    f'account "{acc_name}": invalid outgoing webhook event "{ev}"',
                )
    if acc.IncomingWebhook is not None:
        _check_url(path, acc.IncomingWebhook, f'account "{acc_name}": incoming webhook', acc.IncomingWebhook.URL)

    own_canonical: set[str] = set()
    catchall_domains: set[str] = set()
    for key, dest in acc.Destinations.items():
        if key.startswith("@"):
            try:
                dom_name = parse_domain(key[1:])
            except ValueError as e:
                raise _err(path, acc, "Destinations", f'account "{acc_name}": invalid catchall destination "{key}": {e}') from e
            if dom_name not in lk.domains:
                raise _err(path, acc, "Destinations", f'account "{acc_name}": destination "{key}": unknown domain')
            if dom_name in lk.catchalls:
                raise _err(path, acc, "Destinations", f'account "{acc_name}": duplicate catchall destination "{key}"')
            lk.catchalls[dom_name] = (acc_name, key, dest)
            catchall_domains.add(dom_name)
            continue
        if "@" not in key:
            if default_domain is None:
                raise _err(path, acc, "Destinations", f'account "{acc_name}": destination "{key}" is a localpart but account has no Domain')
            full = f"{key}@{default_domain}"
        else:
            full = key
        try:
            addr = parse_address(full)
        except ValueError as e:
            raise _err(path, acc, "Destinations", f'account "{acc_name}": destination "{key}": {e}') from e
        entry = lk.domains.get(addr.domain)
        if entry is None:
            raise _err(path, acc, "Destinations", f'account "{acc_name}": destination "{key}": unknown domain')
        dom = entry[1]
        for sep in dom.catchall_separators:
            if sep in addr.localpart:
                raise _err(
                    path, acc, "Destinations",
                    f'account "{acc_name}": localpart of destination "{key}" contains '
                    f'localpart catchall separator "{sep}"',
                )
        canon = f"{fold_localpart(addr.localpart, dom)}@{addr.domain}"
        if canon in lk.destinations:
            other = lk.destinations[canon][0]
            raise _err(path, acc, "Destinations", f'duplicate destination address "{key}" (also in account "{other}")')
        lk.destinations[canon] = (acc_name, key, dest)
        own_canonical.add(canon)

    for s in acc.FromIDLoginAddresses:
        try:
            a = parse_address(s)
        except ValueError as e:
            raise _err(path, acc, "FromIDLoginAddresses", f'invalid fromid login address "{s}" in account "{acc_name}": {e}') from e
        entry = lk.domains.get(a.domain)
        if entry is None:
            raise _err(path, acc, "FromIDLoginAddresses", f'unknown domain in fromid login address "{s}" for account "{acc_name}"')
        dom = entry[1]
        if not dom.catchall_separators:
            raise _err(
                path, acc, "FromIDLoginAddresses",
                f'localpart catchall separator not configured for domain for fromid login address "{s}" for account "{acc_name}"',
            )
        canon = f"{canonical_localpart(a.localpart, dom)}@{a.domain}"
        if canon not in own_canonical and a.domain not in catchall_domains:
            raise _err(
                path, acc, "FromIDLoginAddresses",
                f'fromid login address "{s}" for account "{acc_name}" does not match its destination addresses',
            )
        lk.fromid_logins[f"{fold_localpart(a.localpart, dom)}@{a.domain}"] = acc_name
