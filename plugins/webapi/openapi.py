"""``openapi.json``: an OpenAPI 3.1 description generated from the webapi's own types.

Nothing is written twice: schemas come from the dataclasses in
:mod:`plugins.webapi.types` (the ones the server decodes requests into and
encodes results from), the method list from ``METHODS``, the error codes
from ``ERROR_CODES``.

Requests follow Go's decoding: every field is optional (missing = zero
value), unknown fields are refused (``additionalProperties: false``).
Types only ever produced by the server (results, Submission, Structure...)
list all their fields as ``required``, since the server always writes them.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime
from functools import cache
from typing import Any

from core.version import VERSION
from plugins.webapi.idempotency import OPENAPI_PARAMETER as IDEMPOTENCY_PARAMETER
from plugins.webapi.jsoncodec import optional_inner, type_hints
from plugins.webapi.types import ERROR_CODES, METHODS, Error

UPLOAD_FIELDS = ("alternativefile", "inlinefile", "attachedfile")
TEXT_ERROR = {"text/plain": {"schema": {"type": "string"}}}


def _ref(cls: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{cls.__name__}"}


def _reachable(roots: list[type]) -> set[type]:
    seen: set[type] = set()

    def walk(tp: Any) -> None:
        inner = optional_inner(tp)
        if inner is not None:
            walk(inner)
            return
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            if tp in seen:
                return
            seen.add(tp)
            for h in type_hints(tp).values():
                walk(h)
            return
        for a in typing.get_args(tp):
            walk(a)

    for r in roots:
        walk(r)
    return seen


class _Schemas:
    def __init__(self, input_types: set[type]) -> None:
        self.components: dict[str, Any] = {}
        self.input_types = input_types

    def schema(self, tp: Any) -> dict[str, Any]:
        inner = optional_inner(tp)
        if inner is not None:
            return {"anyOf": [self.schema(inner), {"type": "null"}]}
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            self.component(tp)
            return _ref(tp)
        if tp is bool:
            return {"type": "boolean"}
        if tp is int:
            return {"type": "integer", "format": "int64"}
        if tp is str:
            return {"type": "string"}
        if tp is datetime:
            return {"type": "string", "format": "date-time"}
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin is list:
            return {"type": "array", "items": self.schema(args[0])}
        if origin is tuple:
            return {
                "type": "array",
                "prefixItems": [self.schema(a) for a in args],
                "items": self.schema(args[0]),
                "description": f"A pair; extra elements are ignored, missing ones are empty ({len(args)} expected).",
            }
        if origin is dict:
            return {"type": "object", "additionalProperties": self.schema(args[1])}
        raise TypeError(f"no schema for {tp!r}")

    def component(self, cls: type) -> None:
        name = cls.__name__
        if name in self.components:
            return
        self.components[name] = {}  # placeholder against recursion
        hints = type_hints(cls)
        props = {f.name: self.schema(hints[f.name]) for f in dataclasses.fields(cls)}
        s: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
        doc = (cls.__doc__ or "").strip()
        if doc and not doc.startswith(name + "("):
            s["description"] = doc.split("\n\n")[0]
        if cls not in self.input_types and props:
            s["required"] = list(props)
        if cls is Error:
            props["Code"] = {"type": "string", "enum": list(ERROR_CODES)}
        self.components[name] = s


def _form(request_cls: type, uploads: bool) -> dict[str, Any]:
    props: dict[str, Any] = {
        "request": {
            "type": "string",
            "description": f"JSON of a {request_cls.__name__}.",
            "contentMediaType": "application/json",
            "contentSchema": _ref(request_cls),
        }
    }
    if uploads:
        for f in UPLOAD_FIELDS:
            props[f] = {
                "type": "array",
                # format binary as well: generators written for OpenAPI 3.0 only
                # make file parameters of it.
                "items": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"},
                "description": "Files to add; the part's Content-Type and Content-ID headers are used.",
            }
    return {"type": "object", "properties": props, "required": ["request"]}


@cache
def openapi_document(base_path: str = "/webapi/") -> dict[str, Any]:
    """The OpenAPI 3.1 document for a webapi served at ``base_path`` (ends with ``/``)."""
    inputs = _reachable([m.request for m in METHODS.values()])
    schemas = _Schemas(inputs)
    schemas.component(Error)
    paths: dict[str, Any] = {}
    for name, m in METHODS.items():
        schemas.component(m.request)
        if m.result is not None:
            schemas.component(m.result)
            ok = {
                "description": "Success.",
                "content": {"application/json": {"schema": _ref(m.result)}},
            }
        elif name == "MessageRawGet":
            ok = {
                "description": "The stored message, including the headers added on delivery.",
                "content": {"text/plain": {"schema": {"type": "string"}}},
            }
        else:
            ok = {
                "description": (
                    "The transfer-decoded part. The actual Content-Type is sniffed from its "
                    "first 512 bytes (e.g. text/plain; charset=utf-8)."
                ),
                "content": {
                    "application/octet-stream": {
                        "schema": {"type": "string", "format": "binary", "contentMediaType": "application/octet-stream"}
                    }
                },
            }
        # One request content type per method: code generators handle a choice
        # of request bodies badly (openapi-python-client emits code that does
        # not import). Send is described as multipart, the only way to upload
        # files; the server takes every method in either encoding.
        uploads = name == "Send"
        ctype = "multipart/form-data" if uploads else "application/x-www-form-urlencoded"
        paths[f"/v0/{name}"] = {
            "get": {
                "operationId": f"{name}Page",
                "summary": f"HTML form to call {name}.",
                "security": [],
                "responses": {"200": {"description": "HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
            },
            "post": {
                "operationId": name,
                "summary": m.doc,
                "requestBody": {
                    "required": True,
                    "content": {ctype: {"schema": _form(m.request, uploads)}},
                },
                "responses": {
                    "200": ok,
                    "400": {
                        "description": "Error with a code.",
                        "content": {"application/json": {"schema": _ref(Error)}},
                    },
                    "401": {"description": "Missing or wrong credentials.", "content": TEXT_ERROR},
                    "429": {"description": "Too many failed logins from this network.", "content": TEXT_ERROR},
                },
            },
        }
    # moxtrio extension: the Idempotency-Key header of Send.
    paths["/v0/Send"]["post"]["parameters"] = [IDEMPOTENCY_PARAMETER]
    paths["/v0/"] = {
        "get": {
            "operationId": "Index",
            "summary": "HTML list of the methods.",
            "security": [],
            "responses": {"200": {"description": "HTML page.", "content": {"text/html": {"schema": {"type": "string"}}}}},
        }
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "moxtrio webapi",
            "version": VERSION,
            "description": (
                "mox-compatible HTTP/JSON API (version 0). Each method takes its JSON request in "
                "the form field `request` and authenticates with HTTP basic auth: an email address "
                "and the account password. Every method accepts both "
                "application/x-www-form-urlencoded and multipart/form-data; each is described "
                "with one of them (Send with multipart, for its file uploads)."
            ),
        },
        "servers": [{"url": base_path}],
        "security": [{"basicAuth": []}],
        "paths": paths,
        "components": {
            "schemas": dict(sorted(schemas.components.items())),
            "securitySchemes": {"basicAuth": {"type": "http", "scheme": "basic"}},
        },
    }
