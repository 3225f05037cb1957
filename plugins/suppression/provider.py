"""The suppression lists as the core's ``SuppressionProvider`` (for the webapi).

Registered at configure time with ``ctx.provide(SuppressionProvider, ...)``;
the webapi finds it with ``ctx.service(SuppressionProvider)`` and never
imports this plugin. Every method names the authenticated account and
refuses the empty one ("every account"), which only the administrator's
commands may use. Errors are :class:`SuppressionError` (a ``ServiceError``)
with the webapi code mox answers: ``badAddress`` for an unparsable
address, ``error`` for a duplicate add or an absent remove, ``user`` for a
bad export or import.
"""

from __future__ import annotations

from core.queue.timefmt import TimeExprError, parse_rfc3339
from moxtrio import ExportPage, ExportQuery, ImportRequest
from plugins.suppression.bulk import (
    DEFAULT_REASON,
    FORMATS,
    PAGE,
    ImportDefaults,
    ImportFailed,
    csv_chunk,
    csv_header,
    json_chunk,
)
from plugins.suppression.records import (
    CATEGORIES,
    BadCursor,
    DuplicateSuppression,
    PageFilter,
    Suppression,
    SuppressionAbsent,
    page_cursor,
)
from plugins.suppression.service import (
    CODE_ERROR,
    CODE_USER,
    SuppressionError,
    SuppressionService,
    parse_for_api,
)


def _account(account: str) -> str:
    if not account:
        # The webapi always names the authenticated account; "" would mean
        # every account's list, which is the administrator's alone.
        raise SuppressionError(CODE_ERROR, "suppression operation without account")
    return account


class SuppressionAPI:
    """:class:`core.services.SuppressionProvider` over a server's :class:`SuppressionService`."""

    def __init__(self, svc: SuppressionService) -> None:
        self.svc = svc

    async def list_suppressions(self, account: str) -> list[Suppression]:
        return await self.svc.list(_account(account))

    async def add_suppression(self, account: str, address: str, *, manual: bool, reason: str) -> None:
        account = _account(account)
        rcpt = parse_for_api(address)
        try:
            await self.svc.add(account, rcpt, manual=manual, reason=reason)
        except DuplicateSuppression as exc:
            raise SuppressionError(CODE_ERROR, str(exc)) from exc

    async def remove_suppression(self, account: str, address: str) -> None:
        account = _account(account)
        rcpt = parse_for_api(address)
        try:
            await self.svc.remove(account, rcpt)
        except SuppressionAbsent as exc:
            raise SuppressionError(CODE_ERROR, str(exc)) from exc

    async def is_suppressed(self, account: str, address: str) -> bool:
        account = _account(account)
        return await self.svc.lookup(account, parse_for_api(address)) is not None

    async def export_suppressions(self, account: str, query: ExportQuery) -> ExportPage:
        """One page: the CSV header on the first page; JSON entries without the
        enclosing brackets, with a leading separator after the first page."""
        account = _account(account)
        if query.format not in FORMATS:
            raise SuppressionError(CODE_USER, f"unknown format {query.format!r} (csv or json)")
        if query.category and query.category not in CATEGORIES:
            raise SuppressionError(CODE_USER, f"unknown category {query.category!r}")
        f = PageFilter(account=account, category=query.category, contains=query.contains)
        limit = max(1, min(query.limit or PAGE, PAGE))
        try:
            entries = await self.svc.page(f, query.after, limit + 1)
        except BadCursor as exc:
            raise SuppressionError(CODE_USER, str(exc)) from exc
        more = len(entries) > limit
        entries = entries[:limit]
        if query.format == "csv":
            text = (csv_header() if not query.after else "") + csv_chunk(entries)
        else:
            text = json_chunk(entries, first=not query.after)
        return ExportPage(text, page_cursor(entries[-1]) if more else "")

    async def import_suppressions(self, account: str, request: ImportRequest) -> int:
        account = _account(account)
        until = None
        if request.until:
            try:
                until = parse_rfc3339(request.until)
            except TimeExprError as exc:
                raise SuppressionError(CODE_USER, f"bad Until: {exc}") from exc
        category = request.category or "manual"
        if category not in CATEGORIES:
            raise SuppressionError(CODE_USER, f"unknown category {category!r}")
        defaults = ImportDefaults(category, request.reason or DEFAULT_REASON, until)
        try:
            return await self.svc.import_data(account, request.data, request.format or "csv", defaults)
        except ImportFailed as exc:
            raise SuppressionError(CODE_USER, str(exc)) from exc
