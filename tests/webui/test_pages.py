"""The server-rendered pages over HTTP: login form without a session, each page
with one, security headers, escaping, and the data each page must show."""

from __future__ import annotations

import re

from tests.webhooks.helpers import receiver
from tests.webui.conftest import WebServer, send
from tests.webui.test_admin_api import _wait, _with_results


async def test_pages_without_session_show_login_form(web: WebServer) -> None:
    c = web.client("/admin/")
    for p in ("", "queue", "queue/1", "holdrules", "hooks", "hooks/retired", "retired"):
        r = await c.http.get(c.base + p)
        assert r.status_code == 200, p
        assert 'id="login"' in r.text and "Queue" not in r.text
        assert r.headers["x-frame-options"] == "deny"
        assert "script-src" not in r.headers["content-security-policy"]  # default-src 'self' covers it
        assert "default-src 'self'" in r.headers["content-security-policy"]
    acc = web.client("/account/")
    r = await acc.http.get(acc.base)
    assert 'name="username"' in r.text


async def test_static_files(web: WebServer) -> None:
    c = web.client("/admin/")
    r = await c.http.get(c.base + "static/ui.js")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/javascript")
    r = await c.http.get(c.base + "static/ui.css")
    assert r.status_code == 200 and "text/css" in r.headers["content-type"]
    r = await c.http.get(c.base + "static/../__init__.py")
    assert r.status_code == 404


async def test_admin_pages_show_queue_message_and_hold_rules(web: WebServer) -> None:
    a = await web.admin()
    rule = await a.call("QueueHoldRuleAdd", {"RecipientDomainStr": "held.example"})
    qid = await send(web, "x@held.example", subject="<b>not bold</b>")
    r = await a.http.get(a.base + "queue")
    assert r.status_code == 200
    assert f'href="/admin/queue/{qid}"' in r.text
    assert "&lt;b&gt;not bold&lt;/b&gt;" in r.text and "<b>not bold</b>" not in r.text
    assert "held" in r.text
    r = await a.http.get(a.base + f"queue/{qid}")
    assert "Delivery attempts" in r.text and "x@held.example" in r.text
    r = await a.http.get(a.base + "holdrules")
    assert "held.example" in r.text and f"[{rule['ID']}]" in r.text
    r = await a.http.get(a.base + "queue?hold=false")
    assert f"/admin/queue/{qid}" not in r.text
    r = await a.http.get(a.base + "queue/999999")
    assert "not in the queue" in r.text
    # Paging: one per page gives a next-page link with the keyset.
    await send(web, "y@held.example")
    r = await a.http.get(a.base + "queue?n=1&sort=Queued&asc=1")
    m = re.search(r'href="(\?[^"]*lastid=\d+[^"]*)" rel="next"', r.text)
    assert m, r.text
    r2 = await a.http.get(a.base + "queue" + m.group(1).replace("&amp;", "&"))
    ids = re.findall(r'href="/admin/queue/(\d+)"', r2.text)
    assert ids and int(ids[0]) != qid


async def test_admin_hook_pages_pretty_print_payload(web: WebServer) -> None:
    async with receiver(status=500) as rec:
        acc = await web.account()
        await acc.call("OutgoingWebhookSave", rec.url("/fail"), "", [])
        a = await web.admin()
        await send(web, "someone@localhost")
        hooks = await _wait(lambda: _with_results(a.call("HookList", {}, {})), "failed webhook")
        hid = hooks[0]["ID"]
        r = await a.http.get(a.base + "hooks")
        assert f'href="/admin/hooks/{hid}"' in r.text
        r = await a.http.get(a.base + f"hooks/{hid}")
        assert '<pre class="payload">{\n  &#34;Version&#34;: 0,' in r.text
        assert "500" in r.text
        await a.call("HookCancel", {"IDs": [hid]})
        r = await a.http.get(a.base + f"hooks/{hid}", follow_redirects=True)
        assert "Retired webhook" in r.text and "not delivered" in r.text
        r = await a.http.get(a.base + "hooks/retired")
        assert f"/admin/hooks/retired/{hid}" in r.text


async def test_account_pages(web: WebServer) -> None:
    acc = await web.account()
    await acc.call("SuppressionAdd", "gone@example.com", True, "left the company")
    await acc.call("OutgoingWebhookSave", "http://127.0.0.1:9/out", "Bearer x", ["failed", "delivered"])
    r = await acc.http.get(acc.base)
    assert r.status_code == 200 and "mox@localhost" in r.text and "1 address" in r.text
    assert 'value="72.0"' in r.text  # retired periods shown in hours
    r = await acc.http.get(acc.base + "suppressions")
    assert "gone@example.com" in r.text and "left the company" in r.text
    assert 'data-params=\'[&#34;gone@example.com&#34;]\'' in r.text
    r = await acc.http.get(acc.base + "webhooks")
    assert 'value="http://127.0.0.1:9/out"' in r.text
    assert 'value="failed" data-list checked' in r.text and 'value="expanded" data-list>' in r.text
