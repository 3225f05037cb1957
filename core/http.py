"""The HTTP side: quart-trio apps served through hypercorn.

The core knows no HTTP routes of its own. Plugins declare
:class:`core.plugin_api.HTTPService` objects; the config decides on which
listeners, ports and paths each one is enabled (mox's ``WebAPIHTTP`` and
friends). Services that share an IP and port share one app, dispatched by
path, as mox multiplexes its HTTP services. How connections are served
(error containment, limits, deadlines) is :mod:`core.http_server`'s job.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass, field
from typing import Any

import trio
from quart_trio import QuartTrio

from core.http_body import BoundedQuartTrio
from core.http_server import ConnectionCounter, HTTPSettings, ServerConfig, http_settings, serve
from core.plugin_api import ASGIRoute, HTTPService, PluginContext

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
    app = BoundedQuartTrio(f"moxtrio-{binding.listener}-{binding.port}")
    # Uploads and bodies are bounded by each service itself (the webapi knows
    # mox's request limits); Quart's default of 16 MB would cut them short.
    app.config["MAX_CONTENT_LENGTH"] = None
    app.config["BODY_TIMEOUT"] = 120
    for index, (service, path) in enumerate(binding.mounts):
        blueprint = service.blueprint(ctx, path)
        app.register_blueprint(blueprint, name=f"{service.name}_{index}")
    return app


class RoutedApp:
    """The binding's Quart app, with requests a service claims answered straight from ASGI."""

    def __init__(self, app: QuartTrio, routes: list[ASGIRoute]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                handler = route(scope)
                if handler is not None:
                    await handler(receive, send)
                    return
        await self.app(scope, receive, send)


def asgi_app(ctx: PluginContext, binding: HTTPBinding, app: QuartTrio) -> QuartTrio | RoutedApp:
    """``app``, or :class:`RoutedApp` around it when a mounted service has an ASGI route."""
    routes = [s.asgi_route(ctx, path) for s, path in binding.mounts if s.asgi_route is not None]
    return RoutedApp(app, routes) if routes else app


class _TLSConfig(ServerConfig):
    """hypercorn config that uses our prepared SSL context (mox key files
    cannot be handed to ``ssl`` by path)."""

    ssl_context: ssl.SSLContext | None = None

    @property
    def ssl_enabled(self) -> bool:
        return self.ssl_context is not None

    def create_ssl_context(self) -> ssl.SSLContext | None:
        return self.ssl_context


def hypercorn_config(binding: HTTPBinding, ssl_context: ssl.SSLContext | None,
                     settings: HTTPSettings | None = None) -> ServerConfig:
    settings = settings or HTTPSettings()
    hc = _TLSConfig()
    hc.bind = [binding.address]
    hc.accesslog = None
    hc.errorlog = logging.getLogger("moxtrio.http.hypercorn")
    hc.graceful_timeout = 3.0
    hc.keep_alive_timeout = settings.idle_timeout
    hc.request_timeout = settings.request_timeout
    if binding.tls:
        hc.ssl_context = ssl_context
    return hc


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
    counter = ctx.core.http_connections
    app = build_app(ctx, binding)
    hc = hypercorn_config(binding, ssl_context, settings)
    hc.websocket_routes = any(rule.websocket for rule in app.url_map.iter_rules())
    await serve(asgi_app(ctx, binding, app), hc, counter, shutdown_trigger=shutdown.wait,
                task_status=task_status)
