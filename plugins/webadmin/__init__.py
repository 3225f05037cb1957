"""The webadmin plugin: mox's admin web interface for the queue, hold rules and webhooks.

Served at ``/admin/`` (or the listener's ``Path``) on listeners with
``AdminHTTP``/``AdminHTTPS`` enabled: a sherpa JSON API under ``api/``
(:mod:`plugins.webadmin.api`) and server-rendered pages
(:mod:`plugins.webadmin.pages`). The password is checked against the
``AdminPasswordFile`` of mox.conf (``moxadmin`` in localserve).
"""

from __future__ import annotations

import logging

import trio

from core.config.adminpasswd import UnsupportedHashError, verify_password
from core.webui.auth import Verifier, session_migration
from moxtrio import HTTPService, Migration, PluginContext, hookimpl
from plugins.webadmin.auth_state import AdminWebAuth

log = logging.getLogger("moxtrio.webadmin")

KEYS = ("AdminHTTP", "AdminHTTPS")
#: mox: admin sessions end 12 hours after last use; at most 10 exist.
SESSION_LIFETIME = 12 * 3600.0
MAX_SESSIONS = 10


@hookimpl
def moxtrio_migrations() -> list[Migration]:
    return [session_migration("webadmin", "webadmin_sessions")]


def _make_verifier(ctx: PluginContext) -> Verifier:
    async def verify(username: str, password: str) -> tuple[bool, bool, str]:
        path = ctx.config.resolve_path(ctx.config.static.AdminPasswordFile or "adminpasswd")

        def check() -> bool:
            try:
                stored = path.read_text(encoding="utf-8")
            except OSError as exc:
                log.error("admin login: reading password file %s: %s", path, exc)
                return False
            try:
                return verify_password(password, stored)
            except UnsupportedHashError as exc:
                log.error("admin login: %s", exc)
                return False

        return await trio.to_thread.run_sync(check), False, "(admin)"

    return verify


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    if not ctx.localserve:
        log.info(
            "admin interface password: from %s",
            ctx.config.resolve_path(ctx.config.static.AdminPasswordFile or "adminpasswd"),
        )
    ctx.provide(AdminWebAuth, AdminWebAuth(
        ctx,
        kind="webadmin",
        table="webadmin_sessions",
        lifetime=SESSION_LIFETIME,
        max_sessions=MAX_SESSIONS,
        per_account=False,
        verify=_make_verifier(ctx),
        expired_text="session expired (after 12 hours inactivity)",
    ))


def _blueprint(ctx: PluginContext, path: str) -> object:
    from core.webui.iface import Interface, make_blueprint
    from plugins.webadmin.api import FUNCTIONS
    from plugins.webadmin.pages import setup_pages

    iface = Interface("webadmin", KEYS, ctx.require(AdminWebAuth), FUNCTIONS)
    return make_blueprint(ctx, iface, path, setup_pages(ctx, path))


@hookimpl
def moxtrio_http_services(ctx: PluginContext) -> list[HTTPService]:
    return [HTTPService(name="webadmin", config_keys=KEYS, default_path="/admin/", blueprint=_blueprint)]
