"""Suppression list operations for the commands and the webapi's provider.

Registered as ``ctx.service(SuppressionService)``; the webapi reaches the
lists only through :class:`plugins.suppression.provider.SuppressionAPI`
(the core's ``SuppressionProvider``), which always names the authenticated
account: an account sees and changes only its own list. Account ``""``
("every account") exists only for the administrator's commands.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator

import trio

from core.goflags import go_quote
from core.store.models import utcnow
from core.store.sql import Connection
from moxtrio import PluginContext, ServiceError
from plugins.suppression.base import AddressError, RecipientAddress, parse_recipient
from plugins.suppression.bulk import (
    PAGE,
    ImportDefaults,
    ImportFailed,
    parse_import,
)
from plugins.suppression.records import (
    PageFilter,
    Suppression,
    delete_lapsed,
    delete_suppression,
    find_suppression,
    insert_suppression,
    list_page,
    list_suppressions,
    page_cursor,
    upsert_suppressions,
)

#: Webapi error codes this plugin raises.
CODE_BAD_ADDRESS = "badAddress"
CODE_ERROR = "error"
CODE_PROTOCOL = "protocol"
CODE_USER = "user"



class SuppressionError(ServiceError):
    """A typed error for the webapi: ``code`` is the webapi error Code, ``message``
    (also ``str(exc)``) its Message. The webapi answers 400 with both."""


def parse_for_api(address: str) -> RecipientAddress:
    """Parse an address from a request; ``badAddress`` as the webapi reports it."""
    try:
        return parse_recipient(address)
    except AddressError as exc:
        raise SuppressionError(
            CODE_BAD_ADDRESS, f"parsing address {go_quote(address)}: {exc}"
        ) from exc


class SuppressionService:
    """List, look up, add and remove entries of a running server's lists."""

    def __init__(self, ctx: PluginContext) -> None:
        self.ctx = ctx

    async def list(self, account: str = "") -> list[Suppression]:
        """``account``'s entries; all accounts' when ``account`` is ""."""
        return await self.ctx.store.read(lambda conn: list_suppressions(conn, account))

    async def lookup(self, account: str, rcpt: RecipientAddress) -> Suppression | None:
        """The entry for ``rcpt``'s base address; ``account`` "" matches any account."""
        base = rcpt.base
        return await self.ctx.store.read(lambda conn: find_suppression(conn, account, base))

    async def add(
        self, account: str, rcpt: RecipientAddress, *, manual: bool, reason: str
    ) -> Suppression:
        """Insert an entry; raises DuplicateSuppression when the base is listed."""
        if not account:
            raise ValueError("suppression needs an account")
        sup = Suppression(
            account=account,
            base_address=rcpt.base,
            original_address=rcpt.original,
            created=utcnow(),
            manual=manual,
            reason=reason,
        )

        def write(conn: Connection) -> Suppression:
            return insert_suppression(conn, sup)

        return await self.ctx.store.write(write)

    async def remove(self, account: str, rcpt: RecipientAddress) -> None:
        """Delete the entry with ``rcpt``'s base address; raises SuppressionAbsent."""
        base = rcpt.base

        def write(conn: Connection) -> None:
            delete_suppression(conn, account, base)

        await self.ctx.store.write(write)

    # -- bulk (moxtrio extensions) ----------------------------------------------

    async def page(
        self, f: PageFilter, after: str = "", limit: int = PAGE
    ) -> builtins.list[Suppression]:
        """One page of a filtered listing (see :func:`records.list_page`)."""
        return await self.ctx.store.read(lambda conn: list_page(conn, f, after, limit))

    async def export(self, f: PageFilter) -> AsyncIterator[builtins.list[Suppression]]:
        """Every entry matching ``f``, page by page (each page its own read)."""
        after = ""
        while True:
            entries = await self.page(f, after, PAGE)
            if entries:
                yield entries
            if len(entries) < PAGE:
                return
            after = page_cursor(entries[-1])

    async def import_data(
        self, account: str, data: str, fmt: str, defaults: ImportDefaults | None = None
    ) -> int:
        """Import a CSV/JSON list into ``account``'s list, all or nothing.

        Raises ImportFailed (every bad line) before anything is written.
        """
        if not account:
            raise ImportFailed([(0, "import needs an account")])
        now = utcnow()
        entries = await trio.to_thread.run_sync(
            lambda: parse_import(account, data, fmt, now, defaults)
        )
        return await self.ctx.store.write(lambda conn: upsert_suppressions(conn, entries))

    async def delete_lapsed(self) -> int:
        now = utcnow()
        return await self.ctx.store.write(lambda conn: delete_lapsed(conn, now))
