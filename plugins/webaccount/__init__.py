"""The webaccount plugin: mox's account web interface for suppressions and webhooks.

Served at the listener's ``AccountHTTP``/``AccountHTTPS`` path (mox's
default ``/``; localserve uses ``/account/``): a sherpa JSON API under
``api/`` (:mod:`plugins.webaccount.api`) and server-rendered pages. Users
log in with an email address of their account and its password.
"""

from __future__ import annotations

from core.webui.auth import session_migration, verify_account_login
from moxtrio import HTTPService, Migration, PluginContext, hookimpl
from plugins.webaccount.auth_state import AccountWebAuth

KEYS = ("AccountHTTP", "AccountHTTPS")
#: mox: account sessions end 24 hours after last use; at most 100 per account.
SESSION_LIFETIME = 24 * 3600.0
MAX_SESSIONS = 100


@hookimpl
def moxtrio_migrations() -> list[Migration]:
    return [session_migration("webaccount", "webaccount_sessions")]


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    async def verify(username: str, password: str) -> tuple[bool, bool, str]:
        return await verify_account_login(ctx, username, password)

    ctx.provide(AccountWebAuth, AccountWebAuth(
        ctx,
        kind="webaccount",
        table="webaccount_sessions",
        lifetime=SESSION_LIFETIME,
        max_sessions=MAX_SESSIONS,
        per_account=True,
        verify=verify,
        expired_text="session expired (after 24 hours inactivity)",
    ))


def _blueprint(ctx: PluginContext, path: str) -> object:
    from core.webui.iface import Interface, make_blueprint
    from plugins.webaccount.api import FUNCTIONS
    from plugins.webaccount.pages import setup_pages

    iface = Interface("webaccount", KEYS, ctx.require(AccountWebAuth), FUNCTIONS)
    return make_blueprint(ctx, iface, path, setup_pages(ctx, path))


@hookimpl
def moxtrio_http_services(ctx: PluginContext) -> list[HTTPService]:
    return [HTTPService(name="webaccount", config_keys=KEYS, default_path="/", blueprint=_blueprint)]
