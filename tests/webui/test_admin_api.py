"""The admin sherpa API over HTTP against a running localserve: every function,
success and error paths, keyset pagination, and the hold-rule/queue interplay."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import trio

from tests.webhooks.helpers import receiver
from tests.webui.conftest import Sherpa, WebServer, send


async def _wait(pred: Any, what: str, timeout: float = 15.0) -> Any:
    with trio.move_on_after(timeout):
        while True:
            v = await pred()
            if v:
                return v
            await trio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00")).astimezone(UTC)


async def test_hold_rule_then_send_shows_hold_in_queue_list(web: WebServer) -> None:
    a = await web.admin()
    rule = await a.call("QueueHoldRuleAdd", {"ID": 0, "Account": "", "SenderDomainStr": "",
                                             "RecipientDomainStr": "held.example"})
    assert rule["ID"] > 0 and rule["RecipientDomainStr"] == "held.example"
    assert rule["RecipientDomain"] == {"ASCII": "held.example", "Unicode": ""}
    assert await a.call("QueueHoldRuleList") == [rule]
    qid = await send(web, "someone@held.example")
    other = await send(web, "someone@localhost")
    msgs = await a.call("QueueList", {"IDs": [qid]}, {})
    assert len(msgs) == 1
    m = msgs[0]
    assert m["ID"] == qid and m["Hold"] is True
    assert (m["RecipientLocalpart"], m["RecipientDomainStr"]) == ("someone", "held.example")
    assert m["SenderAccount"] == "mox" and m["Subject"] == "hello"
    assert list(m)[:4] == ["ID", "BaseID", "Queued", "Hold"]
    assert await a.call("QueueSize") >= 1
    # The message to localhost was not held: it is delivered and retired.
    retired = await _wait(lambda: a.call("RetiredList", {"IDs": [other]}, {}), "delivery of the other message")
    assert retired[0]["Success"] is True
    # Removing the rule keeps the message on hold (as mox).
    assert await a.call("QueueHoldRuleRemove", rule["ID"]) is None
    assert await a.call("QueueHoldRuleList") == []
    assert (await a.call("QueueList", {"IDs": [qid]}, {}))[0]["Hold"] is True
    err = await a.error("QueueHoldRuleRemove", rule["ID"])
    assert err["code"] == "user:error" and "not found" in err["message"]
    err = await a.error("QueueHoldRuleAdd", {"RecipientDomainStr": "bad domain!"})
    assert err["code"] == "user:error"


async def _held(web: WebServer, a: Sherpa, n: int) -> list[int]:
    await a.call("QueueHoldRuleAdd", {"RecipientDomainStr": "held.example"})
    return [await send(web, f"r{i}@held.example", subject=f"m{i}") for i in range(n)]


async def test_queue_list_keyset_pagination(web: WebServer) -> None:
    a = await web.admin()
    ids = await _held(web, a, 5)
    for asc in (True, False):
        seen: list[int] = []
        sort: dict[str, Any] = {"Field": "Queued", "Asc": asc, "LastID": 0, "Last": None}
        pages = 0
        while True:
            page = await a.call("QueueList", {"Max": 2, "Hold": True}, sort)
            if not page:
                break
            pages += 1
            assert len(page) <= 2
            seen += [m["ID"] for m in page]
            sort["LastID"], sort["Last"] = page[-1]["ID"], page[-1]["Queued"]
            assert pages <= 5
        assert pages == 3
        assert sorted(seen) == sorted(ids) and len(set(seen)) == 5
        assert seen == (sorted(ids) if asc else sorted(ids, reverse=True))
    # Filters: From/To substrings, account.
    assert [m["ID"] for m in await a.call("QueueList", {"To": "r3@"}, {})] == [ids[3]]
    assert await a.call("QueueList", {"Account": "nobody"}, {}) == []
    retired = await a.call("RetiredList", {"Max": 1}, {"Field": "LastActivity", "Asc": False})
    assert retired == []


async def test_queue_operations(web: WebServer) -> None:
    a = await web.admin()
    ids = await _held(web, a, 4)
    f0 = {"IDs": [ids[0]]}
    before = _t((await a.call("QueueList", f0, {}))[0]["NextAttempt"])
    assert await a.call("QueueNextAttemptAdd", f0, 30) == 1
    after = _t((await a.call("QueueList", f0, {}))[0]["NextAttempt"])
    assert 1790 <= (after - before).total_seconds() <= 1810
    assert await a.call("QueueNextAttemptSet", f0, 120) == 1
    later = _t((await a.call("QueueList", f0, {}))[0]["NextAttempt"])
    assert 110 * 60 <= (later - datetime.now(UTC)).total_seconds() <= 121 * 60
    assert await a.call("QueueRequireTLSSet", f0, False) == 1
    assert (await a.call("QueueList", f0, {}))[0]["RequireTLS"] is False
    assert await a.call("QueueRequireTLSSet", f0, None) == 1
    assert (await a.call("QueueList", f0, {}))[0]["RequireTLS"] is None
    assert await a.call("QueueTransportSet", {"IDs": [ids[1]]}, "relay") == 1
    assert (await a.call("QueueList", {"IDs": [ids[1]]}, {}))[0]["Transport"] == "relay"
    assert await a.call("QueueTransportSet", {"IDs": [ids[1]]}, "") == 1
    # Fail and drop retire the messages without success.
    assert await a.call("QueueFail", {"IDs": [ids[2]]}) == 1
    assert await a.call("QueueDrop", {"IDs": [ids[3]]}) == 1
    assert await a.call("QueueList", {"IDs": ids[2:]}, {}) == []
    retired = await a.call("RetiredList", {"IDs": ids[2:]}, {})
    assert sorted(r["ID"] for r in retired) == ids[2:]
    assert all(r["Success"] is False for r in retired)
    assert retired[0]["Results"][-1]["Error"] == "delivery canceled by admin"
    # Release: hold off, next attempt now, and it is delivered.
    assert await a.call("QueueNextAttemptSet", {"IDs": ids[:2]}, 0) == 2
    assert await a.call("QueueHoldSet", {"IDs": ids[:2]}, False) == 2
    done = await _wait(lambda: a.call("RetiredList", {"IDs": ids[:2], "Success": True}, {}), "release")
    assert {r["ID"] for r in done} <= set(ids[:2])
    # Nothing matches: zero affected.
    assert await a.call("QueueHoldSet", {"IDs": [999999]}, True) == 0


async def test_api_errors(web: WebServer) -> None:
    a = await web.admin()
    err = await a.error("QueueList", {"Submitted": "<nonsense"}, {})
    assert err["code"] == "user:error"
    err = await a.error("QueueList", {}, {"Field": "Unknown"})
    assert err["code"] == "user:error" and "unknown sort order field" in err["message"]
    err = await a.error("QueueList", {})
    assert err == {"code": "sherpa:badParams",
                   "message": 'function "QueueList": bad number of parameters: got 1, want 2'}
    err = await a.error("QueueList", {"Bogus": 1}, {})
    assert err["code"] == "sherpa:badParams" and "Bogus" in err["message"]
    err = await a.error("QueueHoldSet", {}, "yes")
    assert err["code"] == "sherpa:badParams"
    err = await a.error("NoSuchFunction", status=404)
    assert err == {"code": "sherpa:badFunction", "message": 'function "NoSuchFunction" does not exist'}
    r = await a.http.post(a.base + "api/QueueSize", content=b'{"params": []}',
                          headers={"x-mox-csrf": a.csrf, "Content-Type": "text/plain"})
    assert r.json()["error"]["code"] == "sherpa:badRequest"
    r = await a.http.post(a.base + "api/QueueSize", content=b'{"params": [}',
                          headers={"x-mox-csrf": a.csrf, "Content-Type": "application/json"})
    assert r.json()["error"]["code"] == "sherpa:badRequest"
    r = await a.http.get(a.base + "api/QueueSize")
    assert r.status_code == 405


async def test_webhook_queue_functions(web: WebServer) -> None:
    async with receiver(status=500) as rec:
        acc = await web.account()
        await acc.call("OutgoingWebhookSave", rec.url("/fail"), "Basic dGVzdA==", ["delivered"])
        a = await web.admin()
        await send(web, "someone@localhost")
        await rec.wait(1, "/fail")
        hooks = await _wait(
            lambda: _with_results(a.call("HookList", {"Account": "mox"}, {})), "a failed webhook attempt"
        )
        h = hooks[0]
        assert h["URL"] == rec.url("/fail") and h["OutgoingEvent"] == "delivered"
        assert h["Results"][0]["Success"] is False and h["Results"][0]["Code"] == 500
        assert await a.call("HookQueueSize") == 1
        assert await a.call("HookList", {"Event": "incoming"}, {}) == []
        err = await a.error("HookList", {"Event": "nonsense"}, {})
        assert err["code"] == "user:error"
        f = {"IDs": [h["ID"]]}
        before = _t(h["NextAttempt"])
        assert await a.call("HookNextAttemptAdd", f, 60) == 1
        assert (_t((await a.call("HookList", f, {}))[0]["NextAttempt"]) - before).total_seconds() >= 3590
        assert await a.call("HookNextAttemptSet", f, 0) == 1
        await rec.wait(2, "/fail")
        assert await a.call("HookCancel", f) == 1
        assert await a.call("HookQueueSize") == 0
        retired = await a.call("HookRetiredList", {"IDs": [h["ID"]]}, {})
        assert len(retired) == 1 and retired[0]["Success"] is False
        assert retired[0]["Authorization"] is True  # mox: whether one was set, not its value
        assert await a.call("HookRetiredList", {"Account": "other"}, {}) == []


async def _with_results(aw: Any) -> Any:
    """The hooks once the first has a finished attempt (not the in-progress marker)."""
    hooks = await aw
    done = hooks and hooks[0]["Results"] and hooks[0]["Results"][0]["Error"] != "delivering..."
    return hooks if done else None


async def test_unauthenticated_calls_are_refused(web: WebServer) -> None:
    async with httpx.AsyncClient(timeout=20) as http:
        r = await http.post(f"http://{web.ip}:1080/admin/api/QueueList", json={"params": [{}, {}]},
                            headers={"x-mox-csrf": "x"})
        assert r.json() == {"error": {"code": "user:noAuth", "message": 'no session for "admin" web interface'}}


BAD_FILTER_CALLS = [
    ("QueueList", [{"Submitted": "<bogus"}, {}]),
    ("QueueNextAttemptSet", [{"NextAttempt": "<bogus"}, 5]),
    ("QueueNextAttemptAdd", [{"Submitted": ">bogus"}, 5]),
    ("QueueHoldSet", [{"Submitted": "<bogus"}, True]),
    ("QueueFail", [{"Submitted": "<bogus"}]),
    ("QueueDrop", [{"Submitted": "<bogus"}]),
    ("QueueRequireTLSSet", [{"Submitted": "<bogus"}, None]),
    ("QueueTransportSet", [{"Submitted": "<bogus"}, ""]),
    ("RetiredList", [{"LastActivity": "<bogus"}, {}]),
    ("HookList", [{"Submitted": "<bogus"}, {}]),
    ("HookNextAttemptSet", [{"Submitted": "<bogus"}, 1]),
    ("HookNextAttemptAdd", [{"Submitted": "<bogus"}, 1]),
    ("HookCancel", [{"Submitted": "<bogus"}]),
    ("HookRetiredList", [{"LastActivity": "<bogus"}, {}]),
]


async def test_every_filter_function_refuses_bad_input(web: WebServer) -> None:
    a = await web.admin()
    await a.call("QueueHoldRuleAdd", {"RecipientDomainStr": "held.example"})
    qid = await send(web, "keep@held.example")
    for fn, params in BAD_FILTER_CALLS:
        err = await a.error(fn, *params)
        assert err["code"] == "user:error", (fn, err)
        err = await a.error(fn, *params, "extra")
        assert err["code"] == "sherpa:badParams", (fn, err)
        assert err["message"].startswith(f'function "{fn}": bad number of parameters')
        err = await a.error(fn, "not an object", *params[1:])
        assert err["code"] == "sherpa:badParams", (fn, err)
    # Nothing was changed by the refused calls.
    [m] = await a.call("QueueList", {"IDs": [qid]}, {})
    assert m["Hold"] is True and m["Transport"] == "" and m["RequireTLS"] is None
    for fn in ("QueueSize", "HookQueueSize", "QueueHoldRuleList", "Logout"):
        err = await a.error(fn, "extra")
        assert err["code"] == "sherpa:badParams", fn
    err = await a.error("QueueHoldRuleRemove", "one")
    assert err["code"] == "sherpa:badParams"
