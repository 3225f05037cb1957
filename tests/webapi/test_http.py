"""Routing, pages, headers, authentication, rate limiting and request decoding over HTTP."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx

from plugins.webapi.auth import Authenticator
from plugins.webapi.types import METHODS
from tests.webapi.conftest import AUTH, WebapiServer, add_account_settings, start

SECURITY = {
    "x-frame-options": "deny",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'self' 'unsafe-inline' data:",
    "referrer-policy": "same-origin",
}


def assert_security(r: httpx.Response) -> None:
    for k, v in SECURITY.items():
        assert r.headers.get(k) == v, (r.url, k)


async def test_routing_table(srv: WebapiServer) -> None:
    h = srv.http
    base = srv.base
    r = await h.get(base[:-1])
    assert r.status_code == 303 and r.headers["location"] == "/webapi/"
    assert_security(r)
    r = await h.get(base)
    assert r.status_code == 303 and r.headers["location"] == "/webapi/v0/"
    r = await h.post(base)
    assert (r.status_code, r.text) == (405, "405 - method not allow\n")
    for method in ("GET", "POST", "PUT"):
        r = await h.request(method, srv.v0)
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
        assert_security(r)
    links = [line for line in r.text.split("\n") if "<li>" in line]
    assert [line.split('"')[1] for line in links] == list(METHODS) == sorted(METHODS)
    assert "<title>Webapi - Mox</title>" in r.text
    for path in ("v0", "other", "v0/Unknown", "v0/send", "v0/Send/x"):
        r = await h.post(base + path)
        assert (r.status_code, r.text) == (404, "404 page not found\n"), path
        assert r.headers["content-type"] == "text/plain; charset=utf-8"
        assert_security(r)
    for method in ("PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"):
        r = await h.request(method, srv.v0 + "Send")
        assert r.status_code == 405, method
        if method != "HEAD":
            assert r.text == "405 - method not allowed - use get or post\n"


async def test_method_pages(srv: WebapiServer) -> None:
    for name, m in METHODS.items():
        r = await srv.http.get(srv.v0 + name)
        assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
        assert f"<title>Method {name} - WebAPI - Mox</title>" in r.text
        assert 'name="request" id="webapirequest"' in r.text or 'id="webapirequest" name="request"' in r.text
        if m.result is None:
            assert "Method has a non-JSON response." in r.text
        else:
            assert 'id="webapiresponse"' in r.text
    r = await srv.http.get(srv.v0 + "Send")
    # The example request is valid input for the method itself.
    import html

    example = html.unescape(r.text.split('id="webapirequest"', 1)[1].split(">", 1)[1].split("</textarea>", 1)[0])
    d = json.loads(example)
    assert list(d)[:3] == ["From", "To", "CC"] and d["Extra"] == {"example": ""}
    assert d["Headers"] == [["", ""]] and d["Date"] == "0001-01-01T00:00:00Z"
    assert "\n\t\"From\": [" in example


async def test_openapi(srv: WebapiServer) -> None:
    for url in (srv.base + "openapi.json", srv.v0 + "openapi.json"):
        r = await srv.http.get(url)
        assert r.status_code == 200
        doc = r.json()
        assert doc["openapi"].startswith("3.1")
        assert set(p.split("/")[-1] for p in doc["paths"] if p != "/v0/") == set(METHODS)
        schemas = doc["components"]["schemas"]
        assert list(schemas["SendRequest"]["properties"])[:3] == ["From", "To", "CC"]
        assert schemas["Error"]["properties"]["Code"]["enum"][0] == "protocol"
        assert schemas["MessageMeta"]["required"][0] == "Size"


async def test_auth_failures(tmp_path: Path) -> None:
    edit = add_account_settings("LoginDisabled: testing")

    async for srv in start(tmp_path, edit_domains=edit):
        r = await srv.post("SuppressionList", {}, auth=None)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Basic realm=webapi"
        assert r.text == "401 - unauthorized - use http basic auth with email address as username\n"
        assert_security(r)
        r = await srv.post("SuppressionList", {}, auth=None, headers={"Authorization": "Basic !!!"})
        assert r.status_code == 401
        r = await srv.post("SuppressionList", {}, auth=("mox@localhost", "wrong"))
        assert r.status_code == 401 and "use http basic auth" in r.text
        r = await srv.post("SuppressionList", {}, auth=("nobody@localhost", "moxmoxmox"))
        assert r.status_code == 401
        r = await srv.post("SuppressionList", {}, auth=("not an address", "moxmoxmox"))
        assert r.status_code == 401
        r = await srv.post("SuppressionList", {}, auth=AUTH)
        assert (r.status_code, r.text) == (401, "401 - unauthorized - login is disabled for this account\n")


async def test_rate_limit_429(srv: WebapiServer) -> None:
    for _ in range(10):
        r = await srv.post("MessageGet", {"MsgID": 1}, auth=("mox@localhost", "bad"))
        assert r.status_code == 401
    for _ in range(2):
        r = await srv.post("MessageGet", {"MsgID": 1}, auth=("mox@localhost", "bad"))
        assert (r.status_code, r.text) == (429, "429 - too many auth attempts\n")
    r = await srv.post("MessageGet", {"MsgID": 1}, auth=AUTH)
    assert r.status_code == 429
    # Without credentials the limiter is not consulted.
    r = await srv.post("MessageGet", {"MsgID": 1}, auth=None)
    assert r.status_code == 401
    # The limiter is the server's one, which SMTP AUTH uses too.
    assert srv.ctx.service(Authenticator).limiter is srv.ctx.login_limiter


async def test_success_resets_limiter_and_caches_password(srv: WebapiServer) -> None:
    for _ in range(9):
        assert (await srv.post("SuppressionList", {}, auth=("mox@localhost", "bad"))).status_code == 401
    auth = srv.ctx.service(Authenticator)
    runs = auth.pbkdf2_runs
    for _ in range(5):
        assert (await srv.post("MessageGet", {"MsgID": 1})).status_code == 400
    assert auth.pbkdf2_runs == runs + 1  # verified once, then remembered
    # Failures were forgiven by the success: 8 more wrong ones are still 401.
    for _ in range(8):
        assert (await srv.post("SuppressionList", {}, auth=("mox@localhost", "bad"))).status_code == 401
    # A password change makes the remembered check useless.
    from core.accounts import set_password

    await set_password(srv.ctx, "mox", "newpassword")
    assert (await srv.post("MessageGet", {"MsgID": 1})).status_code == 401
    r = await srv.post("MessageGet", {"MsgID": 1}, auth=("mox@localhost", "newpassword"))
    assert r.status_code == 400


async def test_request_decoding(srv: WebapiServer) -> None:
    url = srv.v0 + "MessageGet"
    h = srv.http
    r = await h.post(url, content=b'{"MsgID":1}', auth=AUTH)
    assert r.json() == {"Code": "protocol", "Message": "unknown content-type "}
    r = await h.post(url, content=b"request={}", auth=AUTH, headers={"Content-Type": "bad type/"})
    assert r.json()["Code"] == "protocol" and r.json()["Message"].startswith("unknown content-type bad")
    r = await h.post(url, content=b'{"MsgID":1}', auth=AUTH, headers={"Content-Type": "application/json"})
    assert r.json() == {"Code": "protocol", "Message": "missing/empty request"}
    r = await h.post(url + "?request=%7B%7D", data={"x": "y"}, auth=AUTH)
    assert r.json() == {"Code": "protocol", "Message": "missing/empty request"}
    cases = {
        '{"MsgID": "1"}': "parsing request: json: cannot unmarshal string into Go struct field MessageGetRequest.MsgID of type int64",
        '{"x": 1}': 'parsing request: json: unknown field "x"',
        '{"MsgID": 1.5}': "parsing request: json: cannot unmarshal number 1.5",
        '{"MsgID": 99999999999999999999}': "parsing request: json: cannot unmarshal number",
        "[1]": "parsing request: json: cannot unmarshal array",
        "{": "parsing request:",
        "nonsense": "parsing request:",
    }
    for raw, msg in cases.items():
        code, got = await srv.error("MessageGet", raw=raw)
        assert code == "protocol" and got.startswith(msg), (raw, got)
    # Case-insensitive names, first value only, null = empty request.
    for raw in ('{"msgid": 5}', '{"MSGID": 5} trailing', '{"MsgID": 5} {}'):
        assert await srv.error("MessageGet", raw=raw) == ("messageNotFound", "message not found")
    assert (await srv.error("MessageGet", raw="null"))[0] == "messageNotFound"
    code, msg = await srv.error("Send", {"Date": "2024-01-02", "To": [{"Address": "a@b.example"}], "Text": "x"})
    assert code == "protocol" and 'parsing time "2024-01-02"' in msg
    code, msg = await srv.error("Send", {"To": "x"})
    assert code == "protocol" and "[]webapi.NameAddress" in msg


async def test_request_size_limits(srv: WebapiServer) -> None:
    big = "x" * (10 * 1024 * 1024 + 10)
    r = await srv.http.post(srv.v0 + "MessageGet", content=("request=" + big).encode(), auth=AUTH,
                            headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.json() == {"Code": "protocol", "Message": "parsing form: http: POST too large"}
    r = await srv.http.post(srv.v0 + "MessageGet", files={"request": (None, big + "x" * 300 * 1024)}, auth=AUTH)
    assert r.status_code == 400
    assert r.json() == {"Code": "protocol", "Message": "parsing form: multipart: message too large"}
    # Multipart request field works like urlencoded.
    r = await srv.http.post(srv.v0 + "MessageGet", files={"request": (None, '{"MsgID": 3}')}, auth=AUTH)
    assert r.json()["Code"] == "messageNotFound"


async def test_forwarded_for_is_ignored_without_forwarded(srv: WebapiServer) -> None:
    for _ in range(10):
        r = await srv.post("MessageGet", {"MsgID": 1}, auth=("mox@localhost", "bad"),
                           headers={"X-Forwarded-For": "10.1.2.3"})
        assert r.status_code == 401
    r = await srv.post("MessageGet", {"MsgID": 1}, auth=AUTH, headers={"X-Forwarded-For": "10.9.9.9"})
    assert r.status_code == 429


def test_basic_parsing_unit() -> None:
    from plugins.webapi.auth import parse_basic

    assert parse_basic("Basic " + base64.b64encode(b"a@b:pw:x").decode()) == ("a@b", "pw:x")
    assert parse_basic("Bearer x") is None
    assert parse_basic("Basic " + base64.b64encode(b"nocolon").decode()) is None


async def test_host_matching(srv: WebapiServer) -> None:
    """As in mox: IPs, localhost and the configured host names reach the webapi;
    other Host headers get a 404."""
    for host in (srv.ip, "localhost", "localhost:1080", "LOCALHOST"):
        r = await srv.post("SuppressionList", {}, headers={"Host": host})
        assert r.status_code == 200, (host, r.status_code)
    r = await srv.post("SuppressionList", {}, headers={"Host": "evil.example"})
    assert r.status_code == 404 and r.text.startswith("404 page not found")
    assert r.headers["X-Frame-Options"] == "deny"


async def test_host_matching_follows_a_domains_conf_reload(srv: WebapiServer) -> None:
    """Answers per Host are remembered, but a reloaded domains.conf counts at once:
    a new ClientSettingsDomain reaches the webapi, a removed one no longer does."""
    host = "webmail.example.org"
    r = await srv.post("SuppressionList", {}, headers={"Host": host})
    assert r.status_code == 404
    domains = srv.directory / "domains.conf"
    original = domains.read_text()
    assert "\tlocalhost:\n" in original
    domains.write_text(original.replace("\tlocalhost:\n", f"\tlocalhost:\n\t\tClientSettingsDomain: {host}\n", 1))
    assert srv.ctx.config.reload_dynamic(force=True)
    r = await srv.post("SuppressionList", {}, headers={"Host": host})
    assert r.status_code == 200, r.text
    domains.write_text(original)
    assert srv.ctx.config.reload_dynamic(force=True)
    r = await srv.post("SuppressionList", {}, headers={"Host": host})
    assert r.status_code == 404
