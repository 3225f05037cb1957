"""Suppression list operations for the webapi (through the hook) and the commands.

Registered as ``ctx.services["suppression"]``; the webapi reaches it only
through ``moxtrio_suppression_op`` (:meth:`SuppressionService.op`), which
always names the authenticated account: an account sees and changes only
its own list. Account ``""`` ("every account") exists only for the
administrator's commands.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from core.goflags import go_quote
from core.plugin_api import PluginContext
from core.store.models import utcnow
from plugins.suppression.base import AddressError, RecipientAddress, parse_recipient
from plugins.suppression.records import (
    DuplicateSuppression,
    Suppression,
    SuppressionAbsent,
    delete_suppression,
    find_suppression,
    insert_suppression,
    list_suppressions,
)

#: Webapi error codes (spec 01 §2.2) this plugin raises.
CODE_BAD_ADDRESS = "badAddress"
CODE_ERROR = "error"
CODE_PROTOCOL = "protocol"

OPS = ("list", "add", "remove", "present")


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
