"""Property-based fuzzing against ``openapi.json`` (hypothesis; schemathesis is not available).

Requests are generated from the served OpenAPI document itself (the request
schemas), mixed with malformed variants (unknown fields, wrong types, random
text). Every answer must be 200 or 400, never a 5xx, and must match the
document: JSON results validate against the method's result schema, errors
against ``Error`` (with a known Code), raw methods answer bytes.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import httpx
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.webapi.jsoncodec import parse_time
from tests.webapi.conftest import AUTH, WebapiServer

Schema = dict[str, Any]
ADDRESSES = ["mox@localhost", "mox+x@localhost", "other@example.com", "møx@bücher.example",
             "bad address", "", "a@[1.2.3.4]", '"q u"@example.com']


class Doc:
    def __init__(self, doc: Schema) -> None:
        self.doc = doc
        self.schemas: dict[str, Schema] = doc["components"]["schemas"]

    def resolve(self, s: Schema) -> Schema:
        while "$ref" in s:
            s = self.schemas[s["$ref"].rsplit("/", 1)[1]]
        return s

    # -- generation ----------------------------------------------------------------

    def strategy(self, s: Schema, name: str = "", depth: int = 0) -> st.SearchStrategy[Any]:
        s = self.resolve(s)
        if "anyOf" in s:
            return st.one_of([self.strategy(x, name, depth) for x in s["anyOf"]])
        t = s.get("type")
        if t == "null":
            return st.none()
        if t == "boolean":
            return st.booleans()
        if t == "integer":
            return st.one_of(st.integers(-3, 30), st.integers(-(2**63), 2**63 - 1))
        if t == "string":
            if s.get("format") == "date-time":
                return st.one_of(
                    st.datetimes(timezones=st.just(UTC)).map(
                        lambda d: d.strftime("%Y-%m-%dT%H:%M:%SZ")),
                    st.text(max_size=25))
            if name == "Address" or name == "EmailAddress":
                return st.one_of(st.sampled_from(ADDRESSES), st.text(max_size=20))
            if name == "Data":
                return st.one_of(st.just("aGk="), st.text(max_size=12))
            return st.text(max_size=30)
        if t == "array":
            if depth > 3:
                return st.just([])
            if "prefixItems" in s:
                return st.lists(st.text(max_size=10), max_size=3)
            return st.lists(self.strategy(s["items"], name, depth + 1), max_size=3)
        if t == "object":
            props = s.get("properties")
            if props is None:
                return st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3)
            if depth > 3:
                return st.just({})
            return st.fixed_dictionaries(
                {}, optional={k: self.strategy(v, k, depth + 1) for k, v in props.items()})
        return st.none()

    # -- validation ----------------------------------------------------------------

    def validate(self, v: Any, s: Schema, path: str = "$") -> None:
        s = self.resolve(s)
        if "anyOf" in s:
            errors = []
            for alt in s["anyOf"]:
                try:
                    self.validate(v, alt, path)
                    return
                except AssertionError as exc:
                    errors.append(str(exc))
            raise AssertionError(f"{path}: no alternative matched: {errors}")
        t = s.get("type")
        checks = {"null": v is None, "boolean": isinstance(v, bool), "string": isinstance(v, str),
                  "integer": isinstance(v, int) and not isinstance(v, bool),
                  "array": isinstance(v, list), "object": isinstance(v, dict)}
        assert checks.get(str(t), True), f"{path}: {v!r} is not {t}"
        if "enum" in s:
            assert v in s["enum"], f"{path}: {v!r} not in enum"
        if t == "string" and s.get("format") == "date-time":
            parse_time(v)
        if t == "array":
            for i, x in enumerate(v):
                self.validate(x, s["items"], f"{path}[{i}]")
        if t == "object":
            props = s.get("properties", {})
            for k in s.get("required", []):
                assert k in v, f"{path}: missing {k}"
            addl = s.get("additionalProperties", True)
            for k, x in v.items():
                if k in props:
                    self.validate(x, props[k], f"{path}.{k}")
                elif addl is False:
                    raise AssertionError(f"{path}: unexpected field {k}")
                elif isinstance(addl, dict):
                    self.validate(x, addl, f"{path}.{k}")


def _mutate(value: dict[str, Any], how: int) -> str:
    if how == 1:
        value = {**value, "NoSuchField": 1}
    elif how == 2 and value:
        k = sorted(value)[0]
        value = {**value, k: {"wrong": ["type"]}}
    elif how == 3:
        return json.dumps(value)[: max(1, len(json.dumps(value)) // 2)]
    return json.dumps(value)


def _fuzz(base: str, doc: Doc, method: str, examples: int) -> int:
    post = doc.doc["paths"][f"/v0/{method}"]["post"]
    (form,) = (c["schema"] for c in post["requestBody"]["content"].values())
    req_schema = form["properties"]["request"]["contentSchema"]
    responses = post["responses"]
    calls = 0
    with httpx.Client(timeout=20) as http:

        @settings(max_examples=examples, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(value=doc.strategy(req_schema), how=st.integers(0, 5),
               multipart=st.booleans())
        def run(value: dict[str, Any], how: int, multipart: bool) -> None:
            nonlocal calls
            calls += 1
            body = _mutate(value, how)
            if multipart:
                r = http.post(base + method, files={"request": (None, body)}, auth=AUTH)
            else:
                r = http.post(base + method, data={"request": body}, auth=AUTH)
            assert r.status_code in (200, 400), (r.status_code, r.text, body)
            if r.status_code == 400:
                assert r.headers["content-type"] == "application/json; charset=utf-8"
                doc.validate(r.json(), responses["400"]["content"]["application/json"]["schema"])
                return
            content = responses["200"]["content"]
            if "application/json" in content:
                assert r.headers["content-type"] == "application/json; charset=utf-8"
                doc.validate(r.json(), content["application/json"]["schema"])
            else:
                assert r.headers["content-type"]

        run()
    return calls


async def test_fuzz_every_method_against_openapi(srv: WebapiServer) -> None:
    doc = Doc((await srv.http.get(srv.base + "openapi.json")).json())
    # Some messages to read, so message methods also reach their success paths.
    for i in range(3):
        await srv.store_message(
            b"Subject: m%d\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n\r\npart\r\n--x--\r\n" % i)
    total = 0
    for method in sorted(doc.doc["paths"]):
        name = method.rsplit("/", 1)[1]
        if not name:
            continue
        n = 60 if name == "Send" else 25
        total += await trio.to_thread.run_sync(_fuzz, srv.v0, doc, name, n)
    assert total >= 12 * 20
