"""Suppression list operations for the webapi (through the hook) and the commands.

Registered as ``ctx.services["suppression"]``; the webapi reaches it only
through ``moxtrio_suppression_op`` (:meth:`SuppressionService.op`), which
always names the authenticated account: an account sees and changes only
its own list. Account ``""`` ("every account") exists only for the
administrator's commands.
"""

from __future__ import annotations

import builtins
import sqlite3
from collections.abc import AsyncIterator
from typing import Any

import trio

from core.goflags import go_quote
from core.plugin_api import PluginContext
from core.queue.timefmt import TimeExprError, parse_rfc3339
from core.store.models import utcnow
from plugins.suppression.base import AddressError, RecipientAddress, parse_recipient
from plugins.suppression.bulk import (
    DEFAULT_REASON,
    FORMATS,
    PAGE,
    ImportDefaults,
    ImportFailed,
    csv_chunk,
    csv_header,
    json_chunk,
    parse_import,
)
from plugins.suppression.records import (
    CATEGORIES,
    BadCursor,
    DuplicateSuppression,
    PageFilter,
    Suppression,
    SuppressionAbsent,
    delete_lapsed,
    delete_suppression,
    find_suppression,
    insert_suppression,
    list_page,
    list_suppressions,
    page_cursor,
    upsert_suppressions,
)

#: Webapi error codes (spec 01 §2.2) this plugin raises.
CODE_BAD_ADDRESS = "badAddress"
CODE_ERROR = "error"
CODE_PROTOCOL = "protocol"
CODE_USER = "user"

OPS = ("list", "add", "remove", "present", "export", "import")


class SuppressionError(Exception):
    """A typed error for the webapi: ``code`` is the webapi error Code, ``message``
    (also ``str(exc)``) its Message. The webapi answers 400 with both."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


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

        def write(conn: sqlite3.Connection) -> Suppression:
            return insert_suppression(conn, sup)

        return await self.ctx.store.write(write)

    async def remove(self, account: str, rcpt: RecipientAddress) -> None:
        """Delete the entry with ``rcpt``'s base address; raises SuppressionAbsent."""
        base = rcpt.base

        def write(conn: sqlite3.Connection) -> None:
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

    async def _export_op(self, account: str, args: dict[str, Any]) -> dict[str, Any]:
        """Extension op ``export``: one page as text of an export.

        ``args``: ``Format`` (csv/json), ``Category``, ``Contains``, ``After``
        (cursor), ``Limit``. Returns ``Text`` (the CSV header on the first
        page; JSON entries without the enclosing brackets, with a leading
        separator after the first page) and ``Next`` ("" at the end).
        """
        fmt = str(args.get("Format") or "csv")
        category = str(args.get("Category") or "")
        if fmt not in FORMATS:
            raise SuppressionError(CODE_USER, f"unknown format {fmt!r} (csv or json)")
        if category and category not in CATEGORIES:
            raise SuppressionError(CODE_USER, f"unknown category {category!r}")
        f = PageFilter(account=account, category=category, contains=str(args.get("Contains") or ""))
        after = str(args.get("After") or "")
        limit = max(1, min(int(args.get("Limit") or PAGE), PAGE))
        try:
            entries = await self.page(f, after, limit + 1)
        except BadCursor as exc:
            raise SuppressionError(CODE_USER, str(exc)) from exc
        more = len(entries) > limit
        entries = entries[:limit]
        if fmt == "csv":
            text = (csv_header() if not after else "") + csv_chunk(entries)
        else:
            text = json_chunk(entries, first=not after)
        return {"Text": text, "Next": page_cursor(entries[-1]) if more else ""}

    async def _import_op(self, account: str, args: dict[str, Any]) -> dict[str, Any]:
        """Extension op ``import``: ``Data`` (text), ``Format``, ``Category``, ``Reason``, ``Until``."""
        until = None
        if args.get("Until"):
            try:
                until = parse_rfc3339(str(args["Until"]))
            except TimeExprError as exc:
                raise SuppressionError(CODE_USER, f"bad Until: {exc}") from exc
        category = str(args.get("Category") or "manual")
        if category not in CATEGORIES:
            raise SuppressionError(CODE_USER, f"unknown category {category!r}")
        defaults = ImportDefaults(category, str(args.get("Reason") or DEFAULT_REASON), until)
        try:
            n = await self.import_data(account, str(args["Data"]), str(args.get("Format") or "csv"), defaults)
        except ImportFailed as exc:
            raise SuppressionError(CODE_USER, str(exc)) from exc
        return {"Imported": n}

    # -- the webapi's four methods (spec 01 §5.2-5.5) -------------------------

    async def op(self, account: str, op: str, args: dict[str, Any]) -> dict[str, Any]:
        """Run a webapi Suppression* method for ``account``; returns its response data.

        ``args`` are the request's fields (``EmailAddress``, ``Manual``,
        ``Reason``). Raises SuppressionError with the webapi code.
        """
        if not account:
            # The webapi always names the authenticated account; "" would mean
            # every account's list, which is the administrator's alone.
            raise SuppressionError(CODE_ERROR, "suppression operation without account")
        if op == "list":
            return {"Suppressions": [s.to_json() for s in await self.list(account)]}
        if op == "export":
            return await self._export_op(account, args)
        if op == "import":
            return await self._import_op(account, args)
        if op not in OPS:
            raise SuppressionError(CODE_ERROR, f"unknown suppression operation {op!r}")
        address = args.get("EmailAddress", "")
        if not isinstance(address, str):
            raise SuppressionError(CODE_PROTOCOL, "EmailAddress must be a string")
        rcpt = parse_for_api(address)
        if op == "present":
            return {"Present": await self.lookup(account, rcpt) is not None}
        if op == "add":
            manual = args.get("Manual", False)
            reason = args.get("Reason", "")
            if not isinstance(manual, bool):
                raise SuppressionError(CODE_PROTOCOL, "Manual must be a boolean")
            if not isinstance(reason, str):
                raise SuppressionError(CODE_PROTOCOL, "Reason must be a string")
            try:
                await self.add(account, rcpt, manual=manual, reason=reason)
            except DuplicateSuppression as exc:
                raise SuppressionError(CODE_ERROR, str(exc)) from exc
            return {}
        try:
            await self.remove(account, rcpt)
        except SuppressionAbsent as exc:
            raise SuppressionError(CODE_ERROR, str(exc)) from exc
        return {}
