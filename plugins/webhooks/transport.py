"""The webhook client's network layer: connections only to addresses the policy allows.

Kept apart from :mod:`plugins.webhooks.destination` (the policy) because it
needs httpx and httpcore, which the server imports only once a webhook is
due: a server that has sent none does without them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpcore
import httpx

from core.dns import DNSError
from plugins.webhooks.destination import DestinationPolicy, Lookup


class CheckedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's trio backend, connecting only to addresses the policy allows."""

    def __init__(self, policy: DestinationPolicy, lookup: Lookup) -> None:
        self.policy = policy
        self.lookup = lookup
        self.inner = httpcore.TrioBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            ips = await self.lookup(host)  # an IP address comes back as is
        except DNSError as exc:
            raise httpcore.ConnectError(f"looking up {host}: {exc}") from exc
        if not ips:
            raise httpcore.ConnectError(f"no addresses for {host}")
        self.policy.check(host, ips)
        last: Exception | None = None
        for ip in ips:
            try:
                return await self.inner.connect_tcp(ip, port, timeout, local_address, socket_options)
            except httpcore.ConnectError as exc:
                last = exc
        assert last is not None
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's interface
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks do not use unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class CheckedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport with its connection pool on a :class:`CheckedBackend`.

    httpx does not take a network backend, so the pool it builds is replaced
    by the same pool over our backend (same TLS context, limits, HTTP/1.1).
    """

    def __init__(self, backend: CheckedBackend, limits: httpx.Limits) -> None:
        super().__init__(limits=limits, trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            http1=True,
            http2=False,
            network_backend=backend,
        )
