"""Suppression lists in bulk (a moxtrio extension): import and export as CSV or JSON.

**Export** writes every live entry of a listing filter, in pages (keyset on
account and base address), so a list of 10^5 entries streams without
being held in memory whole. CSV columns and JSON fields are mox's
``Suppression`` fields plus ``Category`` and ``Until``:
``Account,BaseAddress,OriginalAddress,Manual,Reason,Category,Created,Until``.

**Import** reads a whole file for one account and is atomic: every line is
checked first, and if any line is wrong nothing is imported and the answer
lists each bad line with its number and the reason. Accepted input:

* CSV with a header row naming its columns (``Address`` or
  ``OriginalAddress``, and optionally ``Category``, ``Reason``, ``Until``,
  ``Manual``; other columns, such as an export's ``Account``, are ignored),
  or without a header, the columns ``address[,category[,reason[,until]]]``;
* JSON: an array of addresses, or of objects with those field names (an
  export imports as is).

``Until`` is RFC 3339 (empty = never). Lines without a category or reason
get the import's defaults (``manual``, ``imported``). An address already
on the list is updated (its ID and Created stay). The same base address
twice in one file: the last line wins.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.message.parsed import format_json_time
from core.queue.timefmt import TimeExprError, parse_rfc3339
from plugins.suppression.base import AddressError, parse_recipient
from plugins.suppression.records import CATEGORIES, Suppression

FORMATS = ("csv", "json")
EXPORT_COLUMNS = (
    "Account", "BaseAddress", "OriginalAddress", "Manual", "Reason", "Category", "Created", "Until",
)
DEFAULT_REASON = "imported"
#: Bad lines listed in an error report; the rest are counted.
MAX_REPORTED = 100
#: Entries per page when exporting.
PAGE = 2000


class ImportFailed(ValueError):
    """Some lines are wrong; nothing was imported. ``errors``: (line, reason)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        self.errors = errors
        shown = "; ".join(f"line {n}: {e}" for n, e in errors[:MAX_REPORTED])
        more = f"; and {len(errors) - MAX_REPORTED} more" if len(errors) > MAX_REPORTED else ""
        super().__init__(f"{len(errors)} bad line(s), nothing imported: {shown}{more}")


@dataclass(frozen=True)
class ImportDefaults:
    category: str = "manual"
    reason: str = DEFAULT_REASON
    until: datetime | None = None


def _bool(v: str) -> bool:
    s = v.strip().lower()
    if s in ("true", "yes", "1", "t", "y"):
        return True
    if s in ("false", "no", "0", "f", "n", ""):
        return False
    raise ValueError(f"manual must be true or false, not {v!r}")


def _entry(
    account: str, now: datetime, d: ImportDefaults, fields: dict[str, Any]
) -> Suppression:
    address = str(fields.get("address") or "").strip()
    if not address:
        raise ValueError("missing address")
    try:
        rcpt = parse_recipient(address)
    except AddressError as exc:
        raise ValueError(f"bad address {address!r}: {exc}") from None
    category = str(fields.get("category") or "").strip().lower() or d.category
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r} (one of {', '.join(CATEGORIES)})")
    until_raw = fields.get("until")
    until = d.until
    if until_raw not in (None, ""):
        try:
            until = parse_rfc3339(str(until_raw))
        except TimeExprError as exc:
            raise ValueError(f"bad until: {exc}") from None
    manual_raw = fields.get("manual")
    if isinstance(manual_raw, bool):
        manual = manual_raw
    elif manual_raw in (None, ""):
        manual = category not in ("bounce", "complaint")
    else:
        manual = _bool(str(manual_raw))
    reason = fields.get("reason")
    return Suppression(
        account=account,
        base_address=rcpt.base,
        original_address=rcpt.original,
        created=now,
        manual=manual,
        reason=d.reason if reason in (None, "") else str(reason),
        category=category,
        until=until,
    )


_NAMES = {
    "address": "address", "originaladdress": "address", "emailaddress": "address",
    "category": "category", "reason": "reason", "until": "until", "manual": "manual",
}
_POSITIONAL = ("address", "category", "reason", "until")


def _header(cells: list[str]) -> list[str | None] | None:
    """Column names when ``cells`` is a header row (it names an address column)."""
    keys = [c.strip().lower().replace("_", "") for c in cells]
    names = [_NAMES.get(k) for k in keys]
    if "address" not in names and "baseaddress" in keys:
        names[keys.index("baseaddress")] = "address"
    return names if "address" in names else None


def _csv_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    reader = csv.reader(io.StringIO(text))
    rows: list[tuple[int, dict[str, Any]]] = []
    cols: list[str | None] | None = None
    for cells in reader:
        if not cells or all(not c.strip() for c in cells):
            continue
        if cols is None:
            cols = _header(cells)
            if cols is not None:
                continue
            cols = list(_POSITIONAL)
        rows.append((reader.line_num, {n: v for n, v in zip(cols, cells, strict=False) if n}))
    return rows


def _json_rows(text: str) -> list[tuple[int, dict[str, Any]]]:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ImportFailed([(getattr(exc, "lineno", 1), f"bad JSON: {exc}")]) from None
    if not isinstance(data, list):
        raise ImportFailed([(1, "expected a JSON array")])
    rows: list[tuple[int, dict[str, Any]]] = []
    for i, item in enumerate(data, start=1):
        # For JSON the "line" is the position in the array (1-based).
        if isinstance(item, str):
            rows.append((i, {"address": item}))
        elif isinstance(item, dict):
            fields = {_NAMES[k.lower()]: v for k, v in item.items() if k.lower() in _NAMES}
            if "address" not in fields and "BaseAddress" in item:
                fields["address"] = item["BaseAddress"]
            rows.append((i, fields))
        else:
            rows.append((i, {"address": None}))
    return rows


def parse_import(
    account: str, data: str, fmt: str, now: datetime, defaults: ImportDefaults | None = None
) -> list[Suppression]:
    """All entries of an import, or ImportFailed listing every bad line."""
    if fmt not in FORMATS:
        raise ImportFailed([(0, f"unknown format {fmt!r} (csv or json)")])
    d = defaults or ImportDefaults()
    rows = _csv_rows(data) if fmt == "csv" else _json_rows(data)
    entries: dict[str, Suppression] = {}
    errors: list[tuple[int, str]] = []
    for line, fields in rows:
        try:
            e = _entry(account, now, d, fields)
        except ValueError as exc:
            errors.append((line, str(exc)))
            continue
        entries.pop(e.base_address, None)
        entries[e.base_address] = e
    if errors:
        raise ImportFailed(errors)
    return list(entries.values())


def format_from_content_type(content_type: str) -> str | None:
    mt = content_type.split(";")[0].strip().lower()
    if mt in ("text/csv", "application/csv"):
        return "csv"
    if mt in ("application/json", "text/json"):
        return "json"
    return None


# -- export ---------------------------------------------------------------------------


def _row(s: Suppression) -> list[str]:
    return [
        s.account, s.base_address, s.original_address, "true" if s.manual else "false", s.reason,
        s.kind, format_json_time(s.created) or "",
        "" if s.until is None else format_json_time(s.until) or "",
    ]


def csv_header() -> str:
    return _csv([list(EXPORT_COLUMNS)])


def csv_chunk(entries: list[Suppression]) -> str:
    return _csv([_row(s) for s in entries])


def _csv(rows: list[list[str]]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    return buf.getvalue()


def json_chunk(entries: list[Suppression], first: bool) -> str:
    """Entries as part of one JSON array: ``[`` is written by the caller, ``]`` at the end."""
    parts = [json.dumps(s.to_export(), ensure_ascii=False) for s in entries]
    if not parts:
        return ""
    return ("" if first else ",\n") + ",\n".join(parts)
