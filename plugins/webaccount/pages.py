"""The account interface's pages: overview and settings, suppression list, webhooks.

Pages read through the API functions of the logged-in account only; forms
go to the same API with the CSRF token (see the shared script).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from quart import Blueprint, Response

from core.config.models import OutgoingWebhook
from core.sherpa import SherpaError
from core.webui.auth import Session, WebRequest
from core.webui.iface import Call
from core.webui.pages import Pages
from moxtrio import PluginContext
from plugins.webaccount import api
from plugins.webaccount.mail import add_mail_routes

NAV = [("", "Account"), ("suppressions", "Suppression list"), ("webhooks", "Webhooks")]

#: Example payloads for the "test" buttons, as mox's account page sends them.
EXAMPLE_OUTGOING = {
    "Version": 0, "Event": "delivered", "DSN": False, "Suppressing": False, "QueueMsgID": 101,
    "FromID": "MDEyMzQ1Njc4OWFiY2RlZg", "MessageID": "<QnxzgulZK51utga6agH_rg@mox.example>",
    "Subject": "subject of original message", "WebhookQueued": "2024-03-27T00:00:00Z",
    "SMTPCode": 0, "SMTPEnhancedCode": "", "Error": "", "Extra": {},
}
EXAMPLE_INCOMING = {
    "Version": 0, "From": [{"Name": "remote", "Address": "remote@remote.example"}],
    "To": [{"Name": "mox", "Address": "mox@mox.example"}], "CC": [], "BCC": [], "ReplyTo": [],
    "Subject": "test", "MessageID": "<QnxzgulZK51utga6agH_rg@mox.example>", "InReplyTo": "",
    "References": [], "Date": "2024-03-27T00:00:00Z", "Text": "hi ☺\n", "HTML": "",
    "Structure": {"ContentType": "text/plain", "ContentTypeParams": {"charset": "utf-8"},
                  "ContentID": "", "DecodedSize": 8, "Parts": []},
    "Meta": {"MsgID": 201, "MailFrom": "remote@remote.example", "MailFromValidated": False,
             "MsgFromValidated": True, "RcptTo": "mox@localhost", "DKIMVerifiedDomains": ["remote.example"],
             "RemoteIP": "127.0.0.1", "Received": "2024-03-27T00:00:03Z", "MailboxName": "Inbox",
             "Automated": False},
}


def setup_pages(ctx: PluginContext, path: str) -> Callable[[Blueprint, Callable[[], Awaitable[Session | None]]], None]:
    settings = ctx.plugin_settings("webaccount")
    mail = bool(settings.get("MailViewer", ctx.localserve) or settings.get("MailViewerAccounts"))
    nav = [*NAV, ("mail", "Mail")] if mail else NAV
    pages = Pages(Path(__file__).parent / "templates", kind="webaccount", title="moxtrio account",
                  base=path, nav=nav)

    def call(session: Session) -> Call:
        return Call(ctx, session, WebRequest(cookies={}, csrf="", ip=None, https=False, cookie_path=path))

    def setup(bp: Blueprint, current: Callable[[], Awaitable[Session | None]]) -> None:
        def page(rule: str, endpoint: str, fn: Callable[[Session], Awaitable[Response]]) -> None:
            async def view() -> Response:
                session = await current()
                if session is None:
                    return pages.render("base.html", None)
                try:
                    return await fn(session)
                except SherpaError as exc:
                    return pages.render("error.html", session, title="Error", error=exc.message)

            bp.add_url_rule(rule, view_func=view, methods=["GET"], endpoint=endpoint)

        async def index(session: Session) -> Response:
            conf, used, limit, sups = await api.account(call(session))
            return pages.render("account.html", session, active="", title="Account", conf=conf, used=used,
                                limit=limit, nsups=len(sups), hour=3600 * 10**9)

        async def suppressions(session: Session) -> Response:
            rows = await api.suppression_list(call(session))
            return pages.render("suppressions.html", session, active="suppressions", title="Suppression list",
                                rows=rows)

        async def webhooks(session: Session) -> Response:
            conf: dict[str, Any] = (await api.account(call(session)))[0]
            return pages.render("webhooks.html", session, active="webhooks", title="Webhooks",
                                out=conf["OutgoingWebhook"] or {}, inc=conf["IncomingWebhook"] or {},
                                events=OutgoingWebhook.EVENTS, example_out=EXAMPLE_OUTGOING,
                                example_in=EXAMPLE_INCOMING)

        page("/", "index", index)
        page("/suppressions", "suppressions", suppressions)
        page("/webhooks", "webhooks", webhooks)
        add_mail_routes(bp, ctx, pages, current)

    return setup
