"""``queue webhook list|schedule|cancel|print`` and ``queue webhook retired list|print``.

mox's names, flags and output, so scripts written for ``mox``
work with the binary name changed. One deliberate fix: ``-sort queued``
sorts by submission time (mox maps it to a field its own sort rejects).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from core.flaghelp import flag_help
from core.goflags import BOOL, STR, UsageError, go_quote, parse_flags
from core.queue.timefmt import (
    TimeExprError,
    format_go_duration,
    format_rfc3339,
    parse_go_duration,
)
from moxtrio import CtlCommand, CtlRequest, CtlResult, PluginContext
from plugins.webhooks.admin import (
    EVENT_NAMES,
    FilterError,
    HookFilter,
    HookRetiredFilter,
    HookRetiredSort,
    HookSort,
)
from plugins.webhooks.gojson import marshal_indent
from plugins.webhooks.service import HookNotFound, WebhookService

_FILTER = {"ids": STR, "n": STR, "account": STR, "submitted": STR, "nextattempt": STR, "event": STR}
_RETIRED_FILTER = {
    "ids": STR,
    "n": STR,
    "account": STR,
    "submitted": STR,
    "lastactivity": STR,
    "event": STR,
}


def _int(v: str, what: str) -> int:
    try:
        return int(v.strip())
    except ValueError:
        raise UsageError(f'invalid value "{v}" for flag -{what}: parse error') from None


def _common(values: dict[str, str], f: HookFilter | HookRetiredFilter) -> None:
    if "ids" in values:
        f.IDs = [_int(x, "ids") for x in values["ids"].split(",")]
    if "n" in values:
        f.Max = _int(values["n"], "n")
    f.Account = values.get("account", "")
    f.Submitted = values.get("submitted", "")
    if "event" in values:
        if values["event"] not in EVENT_NAMES:
            raise UsageError(
                f'invalid value "{values["event"]}" for flag -event:'
                f' invalid parameter {go_quote(values["event"])}'
            )
        f.Event = values["event"]


def hook_filter(values: dict[str, str]) -> HookFilter:
    f = HookFilter(NextAttempt=values.get("nextattempt", ""))
    _common(values, f)
    return f


def _asc(values: dict[str, str]) -> bool:
    return values.get("asc", "false").lower() in ("true", "1", "t")


def _sort_field(values: dict[str, str], default_flag: str, default_field: str) -> str:
    v = values.get("sort", "")
    fields = {"": "", default_flag: default_field, "queued": "Submitted"}
    if v not in fields:
        raise UsageError(f'invalid value "{v}" for flag -sort: unknown value {go_quote(v)}')
    return fields[v]


def _service(ctx: PluginContext) -> WebhookService:
    svc = ctx.service(WebhookService)
    if svc is None:
        raise RuntimeError("webhooks plugin not configured")
    return svc


async def cmd_list(svc: WebhookService, args: list[str]) -> str:
    values, rest = parse_flags(args, {**_FILTER, "sort": STR, "asc": BOOL})
    if rest:
        raise UsageError("usage: moxtrio queue webhook list [filtersortflags]")
    f = hook_filter(values)
    sort = HookSort(Field=_sort_field(values, "nextattempt", "NextAttempt"), Asc=_asc(values))
    hooks = await svc.list(f, sort)
    now = svc.clock.now()
    lines = ["webhooks:"]
    for h in hooks:
        last = h.last_result()
        since = format_go_duration(now - last.start) if last else ""
        err = last.error if last else ""
        lines.append(
            f"{h.id:5d} {format_rfc3339(h.submitted)} account:{h.account}"
            f" next {format_go_duration(h.next_attempt - now)} last {since}"
            f" error {go_quote(err)} url {h.url}"
        )
    if not hooks:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


async def cmd_schedule(svc: WebhookService, args: list[str]) -> str:
    values, rest = parse_flags(args, {**_FILTER, "now": BOOL})
    if len(rest) != 1:
        raise UsageError("usage: moxtrio queue webhook schedule [filterflags] [-now] duration")
    try:
        d = parse_go_duration(rest[0])
    except TimeExprError as exc:
        raise UsageError(f"parsing duration {go_quote(rest[0])}: {exc}") from exc
    n = await svc.schedule(hook_filter(values), d, from_now=values.get("now") in ("true", "1", "t"))
    return f"{n} webhook(s) rescheduled\n"


async def cmd_cancel(svc: WebhookService, args: list[str]) -> str:
    values, rest = parse_flags(args, dict(_FILTER))
    if rest:
        raise UsageError("usage: moxtrio queue webhook cancel [filterflags]")
    n = await svc.cancel(hook_filter(values))
    # mox's text, typo included: scripts match on it.
    return f"{n} webhook(s)s marked as canceled\n"


def _id_arg(args: list[str], usage: str) -> int:
    if len(args) != 1:
        raise UsageError(usage)
    try:
        return int(args[0])
    except ValueError:
        raise _Failed(
            f'parsing id: strconv.ParseInt: parsing {go_quote(args[0])}: invalid syntax'
        ) from None


class _Failed(Exception):
    """An error mox reports with exit status 1."""


async def cmd_print(svc: WebhookService, args: list[str]) -> str:
    hook_id = _id_arg(args, "usage: moxtrio queue webhook print id")
    try:
        hook = await svc.get(hook_id)
    except HookNotFound:
        raise _Failed("getting webhook: not found") from None
    return marshal_indent(hook.to_json())


async def cmd_retired_list(svc: WebhookService, args: list[str]) -> str:
    values, rest = parse_flags(args, {**_RETIRED_FILTER, "sort": STR, "asc": BOOL})
    if rest:
        raise UsageError("usage: moxtrio queue webhook retired list [filtersortflags]")
    f = HookRetiredFilter(LastActivity=values.get("lastactivity", ""))
    _common(values, f)
    sort = HookRetiredSort(
        Field=_sort_field(values, "lastactivity", "LastActivity"), Asc=_asc(values)
    )
    hooks = await svc.retired_list(f, sort)
    now = svc.clock.now()
    lines = ["retired webhooks:"]
    for h in hooks:
        last = h.last_result()
        since = format_go_duration(now - last.start) if last else ""
        err = last.error if last else ""
        result = "success" if h.success else "failure"
        lines.append(
            f"{h.id:5d} {format_rfc3339(h.submitted)} {result} account:{h.account}"
            f" last {since} error {go_quote(err)} url {h.url}"
        )
    if not hooks:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


async def cmd_retired_print(svc: WebhookService, args: list[str]) -> str:
    hook_id = _id_arg(args, "usage: moxtrio queue webhook retired print id")
    try:
        hook = await svc.get_retired(hook_id)
    except HookNotFound:
        raise _Failed("getting retired webhook: not found") from None
    return marshal_indent(hook.to_json())


Handler = Callable[[WebhookService, list[str]], Awaitable[str]]


def _wrap(fn: Handler) -> Callable[[PluginContext, CtlRequest], Awaitable[CtlResult]]:
    async def handler(ctx: PluginContext, req: CtlRequest) -> CtlResult:
        try:
            return CtlResult(await fn(_service(ctx), list(req.args)))
        except UsageError as exc:
            return CtlResult(f"{exc}\n", 2)
        except (FilterError, TimeExprError, _Failed) as exc:
            return CtlResult(f"{exc}\n", 1)

    return handler


def ctl_commands() -> list[CtlCommand]:
    account = "account that queued the message/webhook"
    filt = flag_help(_FILTER, account=account)
    table: list[tuple[tuple[str, ...], Any, str, str, tuple[tuple[str, str], ...]]] = [
        (("queue", "webhook", "list"), cmd_list, "list webhooks in the queue", "[filtersortflags]",
         flag_help({**_FILTER, "sort": STR, "asc": BOOL}, account=account,
                   sort='field to sort by, "nextattempt" (default) or "queued"')),
        (("queue", "webhook", "schedule"), cmd_schedule, "change next attempt of matching webhooks",
         "[filterflags] [-now] duration", flag_help({**_FILTER, "now": BOOL}, account=account)),
        (("queue", "webhook", "cancel"), cmd_cancel, "cancel delivery of matching webhooks",
         "[filterflags]", filt),
        (("queue", "webhook", "print"), cmd_print, "print a queued webhook as JSON", "id", ()),
        (("queue", "webhook", "retired", "list"), cmd_retired_list, "list retired webhooks",
         "[filtersortflags]",
         flag_help({**_RETIRED_FILTER, "sort": STR, "asc": BOOL}, account=account,
                   sort='field to sort by, "lastactivity" (default) or "queued"')),
        (("queue", "webhook", "retired", "print"), cmd_retired_print, "print a retired webhook", "id", ()),
    ]
    return [CtlCommand(path, _wrap(fn), help, usage, flags) for path, fn, help, usage, flags in table]
