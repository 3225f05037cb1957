"""HTTP routes of the webapi: mox's routing table as a Quart blueprint.

Method calls are answered by :class:`plugins.webapi.service.WebapiService`
(auth, form decoding, method dispatch, in mox's order); here are the pages,
redirects, extensions and refusals around them. Every answer carries mox's
security headers.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from quart import Blueprint, Response, request

from moxtrio import PluginContext
from plugins.webapi.accesslog import logged_call
from plugins.webapi.answers import JSON_TYPE, Answer, error_answer, text_answer
from plugins.webapi.errors import WebapiError
from plugins.webapi.ext_methods import EXTENSIONS
from plugins.webapi.extensions import call_extension
from plugins.webapi.jsoncodec import encode_bytes
from plugins.webapi.openapi import openapi_document
from plugins.webapi.pages import index_page, method_page
from plugins.webapi.service import (
    ALL_METHODS,
    API_VERSION,
    SECURITY_HEADERS,
    WebapiService,
    host_allowed,
)
from plugins.webapi.types import METHODS

log = logging.getLogger("moxtrio.webapi")


def text_response(status: int, body: str, headers: dict[str, str] | None = None) -> Response:
    return text_answer(status, body, headers).response()


def error_response(err: WebapiError) -> Response:
    return error_answer(err).response()


def json_response(result: Any) -> Response:
    return Answer(200, encode_bytes(result), JSON_TYPE).response()


def make_blueprint(ctx: PluginContext, path: str) -> Blueprint:
    """Blueprint serving the webapi at ``path`` (ends with ``/``), mox's routing table."""
    service = WebapiService(ctx, path)
    prefix = path.rstrip("/")
    bp = Blueprint("webapi", __name__, url_prefix=prefix or None)

    def rule(r: str, fn: Callable[..., Awaitable[Response]], methods: list[str]) -> None:
        bp.add_url_rule(
            r, view_func=fn, methods=methods, provide_automatic_options=False,
            endpoint=fn.__name__,
        )

    @bp.before_request
    async def host_matches() -> Response | None:
        # As mox: served only for an IP address, a listener host name (or
        # the global Hostname), localhost, or a domain's ClientSettingsDomain.
        if not host_allowed(ctx, request.host):
            return text_response(404, "404 page not found")
        return None

    @bp.after_request
    async def security_headers(resp: Response) -> Response:
        for k, v in SECURITY_HEADERS.items():
            resp.headers[k] = v
        return resp

    async def redirect_base() -> Response:
        return Response("", status=303, headers={"Location": path})

    async def base() -> Response:
        if request.method != "GET":
            return text_response(405, "405 - method not allow")
        return Response("", status=303, headers={"Location": path + API_VERSION + "/"})

    async def not_found(rest: str = "") -> Response:
        return text_response(404, "404 page not found")

    async def index() -> Response:
        resp = Response(index_page(), status=200)
        resp.headers["Content-Type"] = "text/html; charset=utf-8"
        return resp

    async def openapi() -> Response:
        resp = Response(json.dumps(openapi_document(path), ensure_ascii=False, indent=1), status=200)
        resp.headers["Content-Type"] = JSON_TYPE
        return resp

    async def method(name: str) -> Response:
        if name in EXTENSIONS and request.method == "POST":
            return await call_extension(service, name, EXTENSIONS[name])
        if name not in METHODS:
            return text_response(404, "404 page not found")
        if request.method == "GET":
            resp = Response(method_page(name), status=200)
            resp.headers["Content-Type"] = "text/html; charset=utf-8"
            return resp
        if request.method != "POST":
            return text_response(405, "405 - method not allowed - use get or post")
        return await logged_call(service, name)

    if prefix:
        rule("", redirect_base, ALL_METHODS)
    rule("/", base, ALL_METHODS)
    rule(f"/{API_VERSION}", not_found, ALL_METHODS)
    rule(f"/{API_VERSION}/", index, ALL_METHODS)
    rule("/openapi.json", openapi, ["GET"])
    rule(f"/{API_VERSION}/openapi.json", openapi, ["GET"])
    rule(f"/{API_VERSION}/<name>", method, ALL_METHODS)
    rule("/<path:rest>", not_found, ALL_METHODS)
    return bp
