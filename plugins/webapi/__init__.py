"""The webapi plugin: mox's HTTP/JSON API under ``/webapi/v0/``.

This first cut mounts the service on the listeners that enable
``WebAPIHTTP``/``WebAPIHTTPS`` and answers the index page; the methods come
with the webapi issue.
"""

from __future__ import annotations

from core.hookspecs import hookimpl
from core.plugin_api import HTTPService, PluginContext
from plugins.webapi.routes import make_blueprint


@hookimpl
def moxtrio_http_services(ctx: PluginContext) -> list[HTTPService]:
    return [
        HTTPService(
            name="webapi",
            config_keys=("WebAPIHTTP", "WebAPIHTTPS"),
            default_path="/webapi/",
            blueprint=make_blueprint,
        )
    ]
