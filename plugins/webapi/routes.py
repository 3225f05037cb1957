"""HTTP routes of the webapi service."""

from __future__ import annotations

from typing import Any

from quart import Blueprint, Response

from core.plugin_api import PluginContext

API_VERSION = "v0"


def make_blueprint(ctx: PluginContext, path: str) -> Blueprint:
    """Blueprint serving the webapi at ``path`` (ends with ``/``)."""
    bp = Blueprint("webapi", __name__, url_prefix=path.rstrip("/"))

    @bp.route("/", methods=["GET"])
    async def index() -> Any:
        return Response(
            "<!doctype html><title>webapi</title><h1>webapi</h1>"
            f'<p>Methods are served at <a href="{API_VERSION}/">{API_VERSION}/</a>.</p>',
            content_type="text/html; charset=utf-8",
        )

    @bp.route(f"/{API_VERSION}/", methods=["GET"])
    async def methods() -> Any:
        return Response(
            "<!doctype html><title>webapi v0</title><h1>webapi v0</h1>",
            content_type="text/html; charset=utf-8",
        )

    return bp
