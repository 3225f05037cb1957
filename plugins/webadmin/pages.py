"""The admin interface's pages: queue, retired messages, hold rules, webhook queue.

Each page reads through the same API functions scripts call, so it shows
mox's JSON shapes; actions are forms the shared script sends to the API
(with the CSRF token), confirming destructive ones first. Lists page by
keyset (``lastid``/``last`` in the URL) and sort by a column link.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from quart import Blueprint, Response, request

from core.queue.admin import QueueFilter, QueueSort, RetiredFilter, RetiredSort
from core.services import HookFilter, HookRetiredFilter
from core.sherpa import SherpaError
from core.sqlfilter import Sort
from core.webui.auth import Session, WebRequest
from core.webui.iface import Call
from core.webui.pages import Pages
from moxtrio import HoldRuleAdmin, PluginContext
from plugins.webadmin import api

PAGE_SIZE = 50
NAV = [
    ("queue", "Queue"),
    ("retired", "Retired"),
    ("holdrules", "Hold rules"),
    ("hooks", "Webhooks"),
    ("hooks/retired", "Retired webhooks"),
]


def _bool(v: str | None) -> bool | None:
    return {"true": True, "false": False}.get(v or "")


def _page_size() -> int:
    try:
        return max(1, min(1000, int(request.args.get("n", PAGE_SIZE))))
    except ValueError:
        return PAGE_SIZE


def _sort(fields: tuple[str, ...]) -> Sort:
    field = request.args.get("sort", "")
    if field not in fields:
        field = ""
    lastid = request.args.get("lastid", "")
    return Sort(
        Field=field,
        Asc=request.args.get("asc") == "1",
        LastID=int(lastid) if lastid.isdigit() else 0,
        Last=request.args.get("last") or None,
    )


def _links(rows: list[dict[str, Any]], sort: Sort, key: str, n: int) -> dict[str, str]:
    """Query strings for "next page" and for the sort links, keeping the filters."""
    args = {k: v for k, v in request.args.items() if k not in ("lastid", "last")}
    out = {"first": "?" + urlencode(args) if args else "?"}
    if len(rows) >= n:
        last = rows[-1]
        out["next"] = "?" + urlencode({**args, "lastid": last["ID"], "last": last[key]})
    for field in ("Queued", "NextAttempt", "LastActivity", "Submitted"):
        asc = "0" if sort.Field == field and sort.Asc else "1"
        keep = {k: v for k, v in args.items() if k not in ("sort", "asc")}
        out["sort_" + field] = "?" + urlencode({**keep, "sort": field, "asc": asc})
    return out


async def _live_or_retired(
    found: list[dict[str, Any]], find_retired: Callable[[], Awaitable[list[dict[str, Any]]]],
    retired_url: str, missing: str,
) -> dict[str, Any] | Response:
    """The one row found; else a redirect to its retired page when it has retired; else a user error."""
    if found:
        return found[0]
    if await find_retired():
        return Response("", status=303, headers={"Location": retired_url})
    raise SherpaError("user:error", missing)


def _only(rows: list[dict[str, Any]], missing: str) -> dict[str, Any]:
    """The one row of a lookup by ID, or a user error."""
    if not rows:
        raise SherpaError("user:error", missing)
    return rows[0]


def setup_pages(ctx: PluginContext, path: str) -> Callable[[Blueprint, Callable[[], Awaitable[Session | None]]], None]:
    pages = Pages(Path(__file__).parent / "templates", kind="webadmin", title="moxtrio admin",
                  base=path, nav=NAV)

    def call(session: Session) -> Call:
        return Call(ctx, session, WebRequest(cookies={}, csrf="", ip=None, https=False, cookie_path=path))

    def setup(bp: Blueprint, current: Callable[[], Awaitable[Session | None]]) -> None:
        def page(rule: str, endpoint: str) -> Callable[[Any], Any]:
            def wrap(fn: Callable[..., Awaitable[Response]]) -> Any:
                async def view(**kw: Any) -> Response:
                    session = await current()
                    if session is None:
                        return pages.render("base.html", None)
                    try:
                        return await fn(session, **kw)
                    except SherpaError as exc:
                        return pages.render("error.html", session, title="Error", error=exc.message)

                bp.add_url_rule(rule, view_func=view, methods=["GET"], endpoint=endpoint)
                return fn

            return wrap

        @page("/", "index")
        async def index(session: Session) -> Response:
            return Response("", status=303, headers={"Location": path + "queue"})

        @page("/queue", "queue")
        async def queue(session: Session) -> Response:
            a = request.args
            n = _page_size()
            f = QueueFilter(Max=n, Account=a.get("account", ""), From=a.get("from", ""), To=a.get("to", ""),
                            Hold=_bool(a.get("hold")), Submitted=a.get("submitted", ""),
                            NextAttempt=a.get("nextattempt", ""), Transport=a.get("transport") or None)
            sort = _sort(("Queued", "NextAttempt"))
            s = QueueSort(Field=sort.Field, Asc=sort.Asc, LastID=sort.LastID, Last=sort.Last)
            c = call(session)
            msgs = await api.queue_list(c, f, s)
            holdrules = await api.hold_rule_list(c) if ctx.service(HoldRuleAdmin) is not None else []  # type: ignore[type-abstract]
            return pages.render("queue.html", session, active="queue", title="Queue", msgs=msgs,
                                size=await api.queue_size(c), args=a, sort=s, holdrules=holdrules,
                                links=_links(msgs, s, s.Field or "NextAttempt", n))

        @page("/queue/<int:msg_id>", "queue_msg")
        async def queue_msg(session: Session, msg_id: int) -> Response:
            c = call(session)
            m = await _live_or_retired(
                await api.queue_list(c, QueueFilter(IDs=[msg_id]), QueueSort()),
                lambda: api.retired_list(c, RetiredFilter(IDs=[msg_id]), RetiredSort()),
                f"{path}retired/{msg_id}", f"message {msg_id} is not in the queue")
            if isinstance(m, Response):
                return m
            return pages.render("message.html", session, active="queue", title=f"Message {msg_id}",
                                m=m, retired=False)

        @page("/retired", "retired")
        async def retired(session: Session) -> Response:
            a = request.args
            n = _page_size()
            f = RetiredFilter(Max=n, Account=a.get("account", ""), From=a.get("from", ""), To=a.get("to", ""),
                              Submitted=a.get("submitted", ""), LastActivity=a.get("lastactivity", ""),
                              Success=_bool(a.get("success")), Transport=a.get("transport") or None)
            sort = _sort(("Queued", "LastActivity"))
            s = RetiredSort(Field=sort.Field, Asc=sort.Asc, LastID=sort.LastID, Last=sort.Last)
            msgs = await api.retired_list(call(session), f, s)
            return pages.render("retired.html", session, active="retired", title="Retired messages",
                                msgs=msgs, args=a, sort=s, links=_links(msgs, s, s.Field or "LastActivity", n))

        @page("/retired/<int:msg_id>", "retired_msg")
        async def retired_msg(session: Session, msg_id: int) -> Response:
            msgs = await api.retired_list(call(session), RetiredFilter(IDs=[msg_id]), RetiredSort())
            return pages.render("message.html", session, active="retired", title=f"Retired message {msg_id}",
                                m=_only(msgs, f"no retired message {msg_id}"), retired=True)

        @page("/holdrules", "holdrules")
        async def holdrules(session: Session) -> Response:
            rules = await api.hold_rule_list(call(session))
            return pages.render("holdrules.html", session, active="holdrules", title="Hold rules", rules=rules)

        @page("/hooks", "hooks")
        async def hooks(session: Session) -> Response:
            a = request.args
            n = _page_size()
            f = HookFilter(Max=n, Account=a.get("account", ""), Submitted=a.get("submitted", ""),
                           NextAttempt=a.get("nextattempt", ""), Event=a.get("event", ""))
            sort = _sort(("NextAttempt", "Submitted"))
            c = call(session)
            rows = await api.hook_list(c, f, sort)
            return pages.render("hooks.html", session, active="hooks", title="Webhook queue", hooks=rows,
                                size=await api.hook_queue_size(c), args=a, sort=sort,
                                links=_links(rows, sort, sort.Field or "NextAttempt", n))

        @page("/hooks/<int:hook_id>", "hook")
        async def hook(session: Session, hook_id: int) -> Response:
            c = call(session)
            h = await _live_or_retired(
                await api.hook_list(c, HookFilter(IDs=[hook_id]), Sort()),
                lambda: api.hook_retired_list(c, HookRetiredFilter(IDs=[hook_id]), Sort()),
                f"{path}hooks/retired/{hook_id}", f"webhook {hook_id} is not in the queue")
            if isinstance(h, Response):
                return h
            return pages.render("hook.html", session, active="hooks", title=f"Webhook {hook_id}", h=h, retired=False)

        @page("/hooks/retired", "hooks_retired")
        async def hooks_retired(session: Session) -> Response:
            a = request.args
            n = _page_size()
            f = HookRetiredFilter(Max=n, Account=a.get("account", ""), Submitted=a.get("submitted", ""),
                                  LastActivity=a.get("lastactivity", ""), Event=a.get("event", ""))
            sort = _sort(("LastActivity", "Submitted"))
            rows = await api.hook_retired_list(call(session), f, sort)
            return pages.render("hooks_retired.html", session, active="hooks/retired", title="Retired webhooks",
                                hooks=rows, args=a, sort=sort,
                                links=_links(rows, sort, sort.Field or "LastActivity", n))

        @page("/hooks/retired/<int:hook_id>", "hook_retired")
        async def hook_retired(session: Session, hook_id: int) -> Response:
            rows = await api.hook_retired_list(call(session), HookRetiredFilter(IDs=[hook_id]), Sort())
            return pages.render("hook.html", session, active="hooks/retired", title=f"Retired webhook {hook_id}",
                                h=_only(rows, f"no retired webhook {hook_id}"), retired=True)

    return setup
