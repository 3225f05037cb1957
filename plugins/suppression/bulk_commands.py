"""``queue suppress export|import|page`` (moxtrio extensions).

* ``export [-account A] [-format csv|json] [-category C] [-contains S]``:
  the whole (filtered) list on standard output.
* ``import -account A [-format csv|json] [-category C] [-reason R] [-until T]``:
  a CSV or JSON list on standard input, all or nothing; a bad line prints
  ``line N: reason`` for every bad line and imports nothing (exit 1).
* ``page [-account A] [-category C] [-contains S] [-n N] [-after CURSOR]``:
  one page of mox's list format, then ``next: CURSOR`` when more follow.
"""

from __future__ import annotations

from datetime import datetime

from core.goflags import STR, UsageError, parse_flags
from core.queue.timefmt import TimeExprError, parse_go_duration, parse_rfc3339
from core.store.models import utcnow
from moxtrio import CtlCommand, CtlRequest, CtlResult, PluginContext
from plugins.suppression.bulk import (
    FORMATS,
    ImportDefaults,
    ImportFailed,
    csv_chunk,
    csv_header,
    json_chunk,
)
from plugins.suppression.commands import _service, format_list
from plugins.suppression.records import CATEGORIES, BadCursor, PageFilter, page_cursor

USAGE_EXPORT = (
    "usage: moxtrio queue suppress export [-account account] [-format csv|json]"
    " [-category category] [-contains text]\n"
)
USAGE_IMPORT = (
    "usage: moxtrio queue suppress import -account account [-format csv|json]"
    " [-category category] [-reason reason] [-until time] < file\n"
    "  time: RFC 3339 or a duration from now (720h)\n"
)
USAGE_PAGE = (
    "usage: moxtrio queue suppress page [-account account] [-category category]"
    " [-contains text] [-n count] [-after cursor]\n"
)


def _filter(values: dict[str, str]) -> PageFilter:
    category = values.get("category", "")
    if category and category not in CATEGORIES:
        raise UsageError(f"unknown category {category!r} (one of {', '.join(CATEGORIES)})")
    return PageFilter(
        account=values.get("account", ""), category=category, contains=values.get("contains", "")
    )


def _format(values: dict[str, str]) -> str:
    fmt = values.get("format", "csv")
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r} (csv or json)")
    return fmt


def _when(s: str, now: datetime) -> datetime:
    s = s.strip()
    if "T" in s:
        return parse_rfc3339(s)
    return now + parse_go_duration(s)


async def cmd_export(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    try:
        values, rest = parse_flags(
            req.args, {"account": STR, "format": STR, "category": STR, "contains": STR}
        )
        if rest:
            raise UsageError("")
        f, fmt = _filter(values), _format(values)
    except UsageError as exc:
        return CtlResult(f"{exc}\n{USAGE_EXPORT}".lstrip("\n"), 2)
    out = [csv_header() if fmt == "csv" else "["]
    first = True
    async for entries in _service(ctx).export(f):
        out.append(csv_chunk(entries) if fmt == "csv" else json_chunk(entries, first))
        first = False
    if fmt == "json":
        out.append("]\n")
    return CtlResult("".join(out))


async def cmd_import(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    try:
        values, rest = parse_flags(
            req.args,
            {"account": STR, "format": STR, "category": STR, "reason": STR, "until": STR},
        )
        account = values.get("account", "")
        if rest or not account:
            raise UsageError("")
        fmt = _format(values)
        category = values.get("category", "manual")
        if category not in CATEGORIES:
            raise UsageError(f"unknown category {category!r} (one of {', '.join(CATEGORIES)})")
    except UsageError as exc:
        return CtlResult(f"{exc}\n{USAGE_IMPORT}".lstrip("\n"), 2)
    if ctx.config.account(account) is None:
        return CtlResult("looking up account: unknown account\n", 1)
    until = None
    if values.get("until"):
        try:
            until = _when(values["until"], utcnow())
        except TimeExprError as exc:
            return CtlResult(f"parsing -until: {exc}\n", 1)
    defaults = ImportDefaults(category=category, reason=values.get("reason", "imported"), until=until)
    try:
        n = await _service(ctx).import_data(account, req.stdin, fmt, defaults)
    except ImportFailed as exc:
        lines = [f"line {line}: {err}" for line, err in exc.errors]
        return CtlResult("\n".join(lines) + f"\n{len(exc.errors)} bad line(s), nothing imported\n", 1)
    return CtlResult(f"{n} suppression(s) imported\n")


async def cmd_page(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    try:
        values, rest = parse_flags(
            req.args, {"account": STR, "category": STR, "contains": STR, "n": STR, "after": STR}
        )
        if rest:
            raise UsageError("")
        f = _filter(values)
        try:
            n = int(values.get("n", "100"))
        except ValueError:
            raise UsageError(f"invalid value {values['n']!r} for flag -n") from None
        if n < 1:
            raise UsageError("-n must be at least 1")
    except UsageError as exc:
        return CtlResult(f"{exc}\n{USAGE_PAGE}".lstrip("\n"), 2)
    try:
        entries = await _service(ctx).page(f, values.get("after", ""), n + 1)
    except BadCursor as exc:
        return CtlResult(f"{exc}\n", 1)
    more = len(entries) > n
    entries = entries[:n]
    text = format_list(entries)
    if more:
        text += f"next: {page_cursor(entries[-1])}\n"
    return CtlResult(text)


def ctl_commands() -> list[CtlCommand]:
    return [
        CtlCommand(("queue", "suppress", "export"), cmd_export,
                   "export suppression lists as CSV or JSON"),
        CtlCommand(("queue", "suppress", "import"), cmd_import,
                   "import a CSV or JSON suppression list (stdin) into an account, all or nothing"),
        CtlCommand(("queue", "suppress", "page"), cmd_page,
                   "list suppressions with filters, one page at a time"),
    ]
