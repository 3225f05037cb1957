"""The webapi extension methods ``SuppressionExport`` and ``SuppressionImport``.

Both act on the authenticated account's list, through the
core's ``SuppressionProvider`` (``export_suppressions`` and
``import_suppressions``), so the suppression plugin owns the formats.

* ``SuppressionExport``: request (JSON body or ``request`` form field, all
  optional) ``Format`` (``csv``/``json``), ``Category``, ``Contains``. The
  answer streams the whole list, page by page, as ``text/csv`` or a JSON
  array. With ``Limit`` (at most 2000) only one page is answered, and the
  header ``X-Mox-Suppression-Next`` carries the cursor to pass as ``After``
  for the next page (absent on the last page).
* ``SuppressionImport``: the body is the list itself, ``text/csv`` or
  ``application/json`` (or ``?format=csv|json``); query parameters
  ``category``, ``reason``, ``until`` give defaults. All or nothing: any bad
  line answers 400 ``user`` listing the bad lines, and nothing is imported.
  Success: ``{"Imported": n}``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

from quart import Response, request

from moxtrio import ExportPage, ExportQuery, ImportRequest
from plugins.webapi.errors import WebapiError
from plugins.webapi.extensions import ExtCall, json_result
from plugins.webapi.suppression import provider, provider_call

#: Largest import body (10^5 addresses are about 3 MB of CSV).
IMPORT_MAX = 64 << 20
PAGE = 2000


async def _export(call: ExtCall, query: ExportQuery) -> ExportPage:
    p = provider(call.ctx)
    return await provider_call(lambda: p.export_suppressions(call.login.account, query))


async def suppression_export(call: ExtCall) -> Response:
    req = await call.json_request()
    fmt = str(req.get("Format") or "csv")
    try:
        limit = int(req.get("Limit") or PAGE)
    except (TypeError, ValueError):
        raise WebapiError("user", "Limit must be a number") from None
    query = ExportQuery(
        format=fmt, category=str(req.get("Category") or ""), contains=str(req.get("Contains") or ""),
        after=str(req.get("After") or ""), limit=limit,
    )
    first = await _export(call, query)
    ctype = "text/csv; charset=utf-8" if fmt == "csv" else "application/json; charset=utf-8"
    if req.get("Limit"):
        body = first.text if fmt == "csv" else "[" + first.text.lstrip(",\n") + "]\n"
        resp = Response(body, status=200)
        resp.headers["Content-Type"] = ctype
        if first.next:
            resp.headers["X-Mox-Suppression-Next"] = first.next
        return resp

    async def stream() -> AsyncIterator[bytes]:
        # Errors after the first page can no longer change the status: the
        # body then ends early (a JSON array without its closing bracket).
        page = first
        if fmt == "json":
            yield b"["
        while True:
            yield page.text.encode("utf-8")
            if not page.next:
                break
            page = await _export(call, replace(query, after=page.next, limit=PAGE))
        if fmt == "json":
            yield b"]\n"

    resp = Response(stream(), status=200)
    resp.headers["Content-Type"] = ctype
    return resp


async def suppression_import(call: ExtCall) -> Response:
    ctype = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    fmt = call.query("format") or {"text/csv": "csv", "application/json": "json"}.get(ctype, "")
    if fmt not in ("csv", "json"):
        raise WebapiError("user", "send the list as text/csv or application/json (or ?format=csv|json)")
    raw = await call.body(IMPORT_MAX)
    try:
        data = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WebapiError("user", f"list is not UTF-8: {exc}") from None
    req = ImportRequest(
        data=data, format=fmt, category=call.query("category") or "",
        reason=call.query("reason") or "", until=call.query("until") or "",
    )
    p = provider(call.ctx)
    n = await provider_call(lambda: p.import_suppressions(call.login.account, req))
    return json_result({"Imported": n})
