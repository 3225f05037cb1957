"""The webapi plugin: mox's HTTP/JSON API under ``<path>v0/`` (default ``/webapi/v0/``).

Twelve methods wire-compatible with mox v0.0.17, HTML pages to try
them, an OpenAPI 3.1 description generated from the same types
(``<path>openapi.json``), and a typed Python client
(:mod:`plugins.webapi.client`). Mounted on the listeners that enable
``WebAPIHTTP``/``WebAPIHTTPS``.
"""

from __future__ import annotations

from typing import Any

from moxtrio import HTTPService, Migration, PluginContext, hookimpl


def _blueprint(ctx: PluginContext, path: str) -> object:
    # Imported lazily: the client and the types must be importable without
    # pulling in Quart and the server side.
    from plugins.webapi.routes import make_blueprint

    return make_blueprint(ctx, path)


def _asgi_route(ctx: PluginContext, path: str) -> Any:
    from plugins.webapi.fastpath import make_route

    return make_route(ctx, path)


@hookimpl
def moxtrio_http_services(ctx: PluginContext) -> list[HTTPService]:
    return [
        HTTPService(
            name="webapi",
            config_keys=("WebAPIHTTP", "WebAPIHTTPS"),
            default_path="/webapi/",
            blueprint=_blueprint,
            asgi_route=_asgi_route,
        )
    ]


@hookimpl
def moxtrio_migrations() -> list[Migration]:
    """Tables of the extensions (idempotency keys)."""
    from plugins.webapi.idempotency import MIGRATIONS

    return list(MIGRATIONS)
