"""The webapi extension methods ``SuppressionExport`` and ``SuppressionImport``.

Both act on the authenticated account's list, through the
``moxtrio_suppression_op`` hook (ops ``export`` and ``import``), so the
suppression plugin owns the formats.

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
from typing import Any

from quart import Response, request

from core.dispatch import HookFailed
from plugins.webapi.errors import WebapiError
from plugins.webapi.extensions import ExtCall, hook_error, json_result

#: Largest import body (10^5 addresses are about 3 MB of CSV).
IMPORT_MAX = 64 << 20
PAGE = 2000


async def _op(call: ExtCall, op: str, args: dict[str, Any]) -> dict[str, Any]:
    try:
        result = await call.ctx.hooks.first(
            "moxtrio_suppression_op", ctx=call.ctx, account=call.login.account, op=op, args=args
        )
    except HookFailed as exc:
        cause = exc.cause
        code = getattr(cause, "code", None)
        if isinstance(code, str) and isinstance(cause, Exception):
            raise WebapiError(code, str(cause)) from None
        raise hook_error(exc) from None
    if not isinstance(result, dict):
        raise WebapiError("server", "suppression lists not available")
    return result


async def suppression_export(call: ExtCall) -> Response:
    req = await call.json_request()
    fmt = str(req.get("Format") or "csv")
    args = {k: req.get(k) for k in ("Format", "Category", "Contains", "After", "Limit")}
    first = await _op(call, "export", {**args, "Limit": req.get("Limit") or PAGE})
    ctype = "text/csv; charset=utf-8" if fmt == "csv" else "application/json; charset=utf-8"
    if req.get("Limit"):
        body = first["Text"] if fmt == "csv" else "[" + first["Text"].lstrip(",\n") + "]\n"
        resp = Response(body, status=200)
        resp.headers["Content-Type"] = ctype
        if first["Next"]:
            resp.headers["X-Mox-Suppression-Next"] = first["Next"]
        return resp

    async def stream() -> AsyncIterator[bytes]:
        # Errors after the first page can no longer change the status: the
        # body then ends early (a JSON array without its closing bracket).
        page = first
        if fmt == "json":
            yield b"["
        while True:
            yield page["Text"].encode("utf-8")
            if not page["Next"]:
                break
            page = await _op(call, "export", {**args, "After": page["Next"], "Limit": PAGE})
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
    args = {
        "Data": data, "Format": fmt, "Category": call.query("category"),
        "Reason": call.query("reason"), "Until": call.query("until"),
    }
    return json_result(await _op(call, "import", args))
