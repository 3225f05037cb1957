"""The HTTP side: plugins' services on the configured listeners.

The core knows no HTTP routes of its own. Plugins declare
:class:`core.plugin_api.HTTPService` objects; the config decides on which
listeners, ports and paths each one is enabled (mox's ``WebAPIHTTP`` and
friends). Services that share an IP and port share one app, dispatched by
path, as mox multiplexes its HTTP services. How connections are served
(error containment, limits, deadlines) is :mod:`core.http_server`'s job.

A service's busiest requests may be answered straight from ASGI (its
``asgi_route``); everything else goes to a quart-trio app of the mounted
blueprints, built on the first request that needs it. Quart, Flask,
Werkzeug and Jinja2 take about a tenth of a second and a dozen MiB to
import: a server that only answers the webapi never loads them.
"""

from __future__ import annotations

import importlib
import logging
import ssl
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import trio

from core.http_server import ConnectionCounter, http_settings, serve
from core.plugin_api import ASGIRoute, HTTPService, PluginContext

if TYPE_CHECKING:
    from quart_trio import QuartTrio

log = logging.getLogger("moxtrio.http")

DEFAULT_PORTS = {False: 80, True: 443}


@dataclass
class HTTPBinding:
    """One listening HTTP(S) socket and the services mounted on it."""

    ip: str
    port: int
    tls: bool
    listener: str
    mounts: list[tuple[HTTPService, str]] = field(default_factory=list)

    @property
    def address(self) -> str:
        host = f"[{self.ip}]" if ":" in self.ip else self.ip
        return f"{host}:{self.port}"


def _normalise_path(path: str, default: str) -> str:
    path = path or default
    if not path.startswith("/"):
        path = "/" + path
    if not path.endswith("/"):
        path += "/"
    return path


def plan_bindings(config: Any, services: list[HTTPService]) -> list[HTTPBinding]:
    """Work out which sockets to open and which service goes on which path."""
    bindings: dict[tuple[str, int, bool], HTTPBinding] = {}
    for listener_name, listener in sorted(config.static.Listeners.items()):
        for service in services:
            for key in service.config_keys:
                ws = getattr(listener, key, None)
                if ws is None or not getattr(ws, "Enabled", False):
                    continue
                tls = key.endswith("HTTPS")
                port = getattr(ws, "Port", 0) or DEFAULT_PORTS[tls]
                path = _normalise_path(getattr(ws, "Path", "") or "", service.default_path)
                for ip in listener.IPs:
                    b = bindings.setdefault(
                        (ip, port, tls), HTTPBinding(ip=ip, port=port, tls=tls, listener=listener_name)
                    )
                    b.mounts.append((service, path))
    return list(bindings.values())


def build_app(ctx: PluginContext, binding: HTTPBinding) -> QuartTrio:
    """A quart-trio app with each mounted service's blueprint."""
    from core.http_body import BoundedQuartTrio

    app = BoundedQuartTrio(f"moxtrio-{binding.listener}-{binding.port}")
    # Uploads and bodies are bounded by each service itself (the webapi knows
    # mox's request limits); Quart's default of 16 MB would cut them short.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["BODY_TIMEOUT"] = 120
    for index, (service, path) in enumerate(binding.mounts):
        blueprint = service.blueprint(ctx, path)
        app.register_blueprint(blueprint, name=f"{service.name}_{index}")
    return app


def _import_quart() -> None:
    importlib.import_module("core.http_body")


class RoutedApp:
    """The ASGI app of one binding: requests a service claims are answered
    straight from ASGI, the rest by the binding's Quart app, built on first use."""

    def __init__(self, ctx: PluginContext, binding: HTTPBinding) -> None:
        self.ctx = ctx
        self.binding = binding
        self.routes: list[ASGIRoute] = [
            s.asgi_route(ctx, path) for s, path in binding.mounts if s.asgi_route is not None
        ]
        self.app: QuartTrio | None = None
        self._building = trio.Lock()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                handler = route(scope)
                if handler is not None:
                    await handler(receive, send)
                    return
        app = self.app if self.app is not None else await self.quart_app()
        await app(scope, receive, send)

    async def quart_app(self) -> QuartTrio:
        """The Quart app, built once; its imports run in a thread, off the event loop."""
        async with self._building:
            if self.app is None:
                await trio.to_thread.run_sync(_import_quart)
                self.app = build_app(self.ctx, self.binding)
                log.debug("http %s: quart app built", self.binding.address)
        return self.app


async def serve_binding(
    ctx: PluginContext,
    binding: HTTPBinding,
    shutdown: trio.Event,
    *,
    ssl_context: ssl.SSLContext | None = None,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve one binding until ``shutdown`` is set (in-flight requests finish)."""
    settings = http_settings(ctx)
    if ctx.core.http_connections is None:
        ctx.core.http_connections = ConnectionCounter(settings.max_connections_per_ip)
    await serve(RoutedApp(ctx, binding), binding.ip, binding.port, ssl_context if binding.tls else None,
                settings, ctx.core.http_connections, shutdown_trigger=shutdown.wait, task_status=task_status)
