"""The mail viewer of the account interface: what an application sent and received.

On by default in localserve (application developers see their mail the way
Mailpit shows it); elsewhere off unless ``plugins/webaccount.yaml`` turns it
on (``MailViewer: true``) or lists accounts (``MailViewerAccounts: [...]``).

The list is newest first and grows live: the page keeps a server-sent
events stream open that announces each new message. A message's HTML part
never runs in the interface's origin: it is served with a
Content-Security-Policy ``sandbox`` (a unique origin, no scripts, no forms)
that also blocks every load except inline styles and ``data:`` images
(remote images only after the reader asks for them), and shown in an
``<iframe sandbox>``. Raw source and attachments are downloads, never
rendered. For a message this account sent, the page shows the queue's
delivery attempts and the webhooks that fired, matched by Message-ID.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any
from urllib.parse import quote

import trio
from quart import Blueprint, Response, request

from core.message.parsed import message_view
from core.message.structure import (
    Part,
    PartNotFoundError,
    disposition_filename,
    parse_part,
    part_by_path,
)
from core.queue.admin import QueueFilter, RetiredFilter
from core.queue.jsonfmt import attempt_json
from core.store.messages import (
    InvalidMessageID,
    MessageNotFound,
    MessageRemoved,
    get_message,
    newest_messages,
)
from core.store.models import Message
from core.store.sql import Connection
from core.webui.auth import Session
from core.webui.pages import Pages
from moxtrio import PluginContext, WebhookAdmin

#: How often a live list looks for new mail; a message shows up within this.
POLL_INTERVAL = 0.5
#: A comment line now and then keeps proxies from closing an idle stream.
KEEPALIVE = 15.0
LIST_LIMIT = 200
HTML_CSP = "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:{remote}; frame-ancestors 'self'"


def viewer_enabled(ctx: PluginContext, account: str) -> bool:
    settings = ctx.plugin_settings("webaccount")
    if account in (settings.get("MailViewerAccounts") or []):
        return True
    return bool(settings.get("MailViewer", ctx.localserve))


def row_json(m: Message) -> dict[str, Any]:
    """What the live list needs of a message (the same fields the page renders)."""
    return {
        "ID": m.id,
        "Received": m.received.isoformat(timespec="seconds"),
        "From": m.msg_from or m.mail_from,
        "To": m.rcpt_to,
        "Subject": m.subject,
        "Mailbox": m.mailbox_name,
    }


def attachments(p: Part, path: tuple[int, ...] = ()) -> list[dict[str, Any]]:
    """Leaf parts with a file name or an attachment disposition, with their part paths."""
    if p.parts:
        out = []
        for i, sp in enumerate(p.parts):
            out += attachments(sp, (*path, i))
        return out
    disp, filename = disposition_filename(p)
    if not filename and disp != "attachment":
        return []
    return [{"path": ".".join(map(str, path)), "filename": filename or "attachment",
             "type": p.content_type, "size": p.decoded_size}]


def _header_text(p: Part) -> str:
    return p.data[p.header_offset : p.body_offset].decode("utf-8", "replace")


def add_mail_routes(
    bp: Blueprint, ctx: PluginContext, pages: Pages, current: Callable[[], Awaitable[Session | None]]
) -> None:
    async def session_or_none() -> Session | None:
        session = await current()
        if session is None or not viewer_enabled(ctx, session.account):
            return None
        return session

    async def load(session: Session, msg_id: int) -> tuple[Message, bytes] | None:
        try:
            msg = await ctx.store.read(lambda c: get_message(c, session.account, msg_id))
            data = await ctx.store.files.read(msg.file_id)
        except (InvalidMessageID, MessageNotFound, MessageRemoved, OSError, ValueError):
            return None
        return msg, msg.msg_prefix + data

    def forbidden() -> Response:
        return Response("403 - forbidden - no session or mail viewer not enabled\n", status=403,
                        headers={"Content-Type": "text/plain; charset=utf-8"})

    def not_found() -> Response:
        return Response("404 - message not found\n", status=404, headers={"Content-Type": "text/plain; charset=utf-8"})

    async def mail_list() -> Response:
        session = await current()
        if session is None:
            return pages.render("base.html", None)
        if not viewer_enabled(ctx, session.account):
            return pages.render("error.html", session, title="Mail", error="The mail viewer is not enabled for this account.")
        q = request.args.get("q", "")
        account = session.account
        msgs = await ctx.store.read(lambda c: newest_messages(c, account, search=q, limit=LIST_LIMIT))
        latest = await ctx.store.read(lambda c: _max_id(c, account))
        return pages.render("mail.html", session, active="mail", title="Mail", msgs=[row_json(m) for m in msgs],
                            q=q, latest=latest)

    async def mail_events() -> Response:
        session = await session_or_none()
        if session is None:
            return forbidden()
        account = session.account
        q = request.args.get("q", "")
        try:
            after = int(request.args.get("after", "0"))
        except ValueError:
            after = 0

        async def stream() -> AsyncIterator[bytes]:
            last = after
            idle = 0.0
            yield b"retry: 2000\n\n"
            while True:
                msgs = await ctx.store.read(partial(_newer, account=account, search=q, after_id=last))
                for m in reversed(msgs):
                    last = max(last, m.id)
                    yield f"event: message\ndata: {json.dumps(row_json(m))}\n\n".encode()
                if msgs:
                    idle = 0.0
                idle += POLL_INTERVAL
                if idle >= KEEPALIVE:
                    idle = 0.0
                    yield b": keepalive\n\n"
                await trio.sleep(POLL_INTERVAL)

        resp = Response(stream(), headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store",
                                           "X-Accel-Buffering": "no"})
        resp.timeout = None
        return resp

    async def mail_message(msg_id: int) -> Response:
        session = await current()
        if session is None:
            return pages.render("base.html", None)
        if not viewer_enabled(ctx, session.account):
            return pages.render("error.html", session, title="Mail", error="The mail viewer is not enabled for this account.")
        loaded = await load(session, msg_id)
        if loaded is None:
            return pages.render("error.html", session, title="Mail", error=f"message {msg_id} not found", status=404)
        msg, data = loaded

        def parse() -> tuple[dict[str, Any], list[dict[str, Any]], str]:
            p = parse_part(data)
            return message_view(data), attachments(p), _header_text(p)

        view, files, headers = await trio.to_thread.run_sync(parse)
        sent = await _sent_info(ctx, session.account, view.get("MessageID") or "")
        return pages.render("message.html", session, active="mail", title=view.get("Subject") or "(no subject)",
                            m=row_json(msg), view=view, files=files, headers=headers, sent=sent,
                            remote=request.args.get("remote") == "1")

    async def own_message(msg_id: int) -> tuple[Message, bytes] | Response:
        """The message of the session's account, or the 403/404 answer."""
        session = await session_or_none()
        if session is None:
            return forbidden()
        loaded = await load(session, msg_id)
        return not_found() if loaded is None else loaded

    async def mail_html(msg_id: int) -> Response:
        loaded = await own_message(msg_id)
        if isinstance(loaded, Response):
            return loaded
        html = (await trio.to_thread.run_sync(message_view, loaded[1]))["HTML"]
        remote = " http: https:" if request.args.get("remote") == "1" else ""
        return Response(html, headers={
            "Content-Type": "text/html; charset=utf-8",
            "Content-Security-Policy": HTML_CSP.format(remote=remote),
            "X-Frame-Options": "sameorigin",
            "Referrer-Policy": "no-referrer",
            "Cache-Control": "no-store",
        })

    async def mail_raw(msg_id: int) -> Response:
        loaded = await own_message(msg_id)
        if isinstance(loaded, Response):
            return loaded
        return Response(loaded[1], headers={"Content-Type": "text/plain; charset=utf-8",
                                            "Content-Security-Policy": "sandbox; default-src 'none'"})

    async def mail_part(msg_id: int, part: str) -> Response:
        loaded = await own_message(msg_id)
        if isinstance(loaded, Response):
            return loaded
        try:
            path = [int(x) for x in part.split(".")] if part else []
            _, body = await trio.to_thread.run_sync(part_by_path, loaded[1], path)
        except (ValueError, PartNotFoundError):
            return not_found()
        name = request.args.get("name", "attachment") or "attachment"
        return Response(body, headers={
            "Content-Type": "application/octet-stream",
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "Content-Security-Policy": "sandbox; default-src 'none'",
        })

    bp.add_url_rule("/mail", view_func=mail_list, methods=["GET"], endpoint="mail")
    bp.add_url_rule("/mail/events", view_func=mail_events, methods=["GET"], endpoint="mail_events")
    bp.add_url_rule("/mail/<int:msg_id>", view_func=mail_message, methods=["GET"], endpoint="mail_message")
    bp.add_url_rule("/mail/<int:msg_id>/html", view_func=mail_html, methods=["GET"], endpoint="mail_html")
    bp.add_url_rule("/mail/<int:msg_id>/raw", view_func=mail_raw, methods=["GET"], endpoint="mail_raw")
    bp.add_url_rule("/mail/<int:msg_id>/part/<part>", view_func=mail_part, methods=["GET"], endpoint="mail_part")


def _newer(conn: Connection, *, account: str, search: str, after_id: int) -> list[Message]:
    return newest_messages(conn, account, search=search, after_id=after_id, limit=LIST_LIMIT)


def _max_id(conn: Connection, account: str) -> int:
    row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM messages WHERE account = ?", (account,)).fetchone()
    return int(row[0])


async def _sent_info(ctx: PluginContext, account: str, message_id: str) -> dict[str, Any] | None:
    """Queue entries (queued or retired) of this account with this Message-ID, and their webhooks."""
    if not message_id:
        return None
    if not ctx.has_queue:
        return None
    queue = ctx.queue
    queued = [e for e in await queue.list(QueueFilter(Account=account)) if e.message_id == message_id]
    retired = [e for e in await queue.retired_list(RetiredFilter(Account=account)) if e.message_id == message_id]
    if not queued and not retired:
        return None
    deliveries = [
        {"ID": e.id, "To": e.recipient, "State": "queued", "Results": [attempt_json(r) for r in e.results]}
        for e in queued
    ] + [
        {"ID": e.id, "To": e.recipient, "State": "delivered" if e.success else "failed",
         "Results": [attempt_json(r) for r in e.results]}
        for e in retired
    ]
    ids = {d["ID"] for d in deliveries}
    hooks: list[dict[str, Any]] = []
    svc = ctx.service(WebhookAdmin)  # type: ignore[type-abstract]
    if svc is not None:
        for h in [*await svc.list(), *await svc.retired_list()]:
            if h.account == account and h.queue_msg_id in ids:
                hooks.append(h.to_json())
    return {"deliveries": deliveries, "hooks": hooks}
