"""Where a webhook may go: no internal addresses, checked where the connection is made.

Webhook URLs come from account settings, and an account's webhooks carry
mail data and the configured Authorization. Outside localserve a URL that
resolves to a loopback, private, link-local, unique-local, CGNAT or
cloud-metadata address (or another address no public server has) is
refused unless the administrator names its network in
``AllowedWebhookNetworks`` (``plugins/webhooks.yaml``).

The check sits in the HTTP client's network layer
(:mod:`plugins.webhooks.transport`): the name is resolved once, every
address is checked, and the connection goes to a checked address. Nothing resolves the name again between check and connect (no
DNS-rebinding window); TLS still verifies the certificate for the name and
sends it as SNI, and the Host header keeps the name, because the HTTP
layer above works with the URL as given.

Credentials in a URL's userinfo (``https://user:pass@host/``) are sent as
Basic authorization (as Go's client does for mox) but never kept in logs
or attempt results: those get :func:`redact_url`'s form, Go's
``URL.Redacted`` (``user:xxxxx@``).
"""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

SETTING = "AllowedWebhookNetworks"

# Most specific first: the first match names the class in the error.
_CLASSES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("cloud metadata", ("169.254.169.254/32", "fd00:ec2::254/128", "100.100.100.200/32")),
    ("loopback", ("127.0.0.0/8", "::1/128")),
    ("unspecified", ("0.0.0.0/8", "::/128")),
    ("private", ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    ("link-local", ("169.254.0.0/16", "fe80::/10")),
    ("unique-local", ("fc00::/7",)),
    ("CGNAT", ("100.64.0.0/10",)),
    ("multicast", ("224.0.0.0/4", "ff00::/8")),
    ("reserved", ("240.0.0.0/4", "192.0.0.0/24", "198.18.0.0/15", "64:ff9b:1::/48")),
)
CLASSES: tuple[tuple[str, tuple[IPNetwork, ...]], ...] = tuple(
    (name, tuple(ipaddress.ip_network(n) for n in nets)) for name, nets in _CLASSES
)


class DestinationRefused(Exception):
    """The URL's host is (or resolves to) an address webhooks may not reach."""


def address_class(ip: IPAddress) -> str | None:
    """The refused class of ``ip`` ("loopback", "private", ...), or None for a public address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for name, nets in CLASSES:
        if any(ip in n for n in nets):
            return name
    return None


def parse_networks(values: Any) -> list[IPNetwork]:
    """``AllowedWebhookNetworks``: a list of addresses or CIDR networks; ValueError names a bad one."""
    if values is None:
        return []
    if not isinstance(values, list):
        raise ValueError(f"{SETTING}: a list of networks, e.g. [10.1.2.0/24, 127.0.0.1]")
    out = []
    for v in values:
        try:
            out.append(ipaddress.ip_network(str(v), strict=False))
        except ValueError as exc:
            raise ValueError(f"{SETTING}: {exc}") from exc
    return out


class DestinationPolicy:
    """Which addresses a webhook may connect to."""

    def __init__(self, allowed: Iterable[IPNetwork] = (), *, allow_all: bool = False) -> None:
        self.allowed = list(allowed)
        self.allow_all = allow_all

    def refusal(self, host: str, ip: str) -> str | None:
        """Why ``ip`` (for ``host``) is refused, or None when it may be used."""
        if self.allow_all:
            return None
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
        kind = address_class(addr)
        if kind is None or any(addr in n for n in self.allowed):
            return None
        via = "" if host == ip else f"{host} resolves to "
        return (
            f"webhook destination refused: {via}{ip}, a {kind} address"
            f" (allow its network in {SETTING} in plugins/webhooks.yaml)"
        )

    def check(self, host: str, ips: list[str]) -> list[str]:
        """``ips`` if every one may be used; a name with any refused address is refused whole."""
        for ip in ips:
            why = self.refusal(host, ip)
            if why is not None:
                raise DestinationRefused(why)
        return ips


#: Addresses of a host name; an IP address is returned as is.
Lookup = Callable[[str], Awaitable[list[str]]]


def redact_url(url: str) -> str:
    """``url`` with a password replaced by ``xxxxx``, as Go's ``URL.Redacted``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.netloc.rsplit("@", 1)[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:xxxxx@{host}"))


def split_credentials(url: str) -> tuple[str, str]:
    """The URL without userinfo, and the Basic Authorization value its userinfo gives ("" if none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url, ""
    if "@" not in parts.netloc:
        return url, ""
    userinfo, host = parts.netloc.rsplit("@", 1)
    user, _, password = userinfo.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode("ascii")
    return urlunsplit(parts._replace(netloc=host)), f"Basic {token}"
