"""``moxtrio queue …`` control commands with mox's names, flags and output.

Flags are parsed the way Go's ``flag`` package does (``-name value``,
``-name=value``, ``--name``; parsing stops at the first non-flag argument),
so scripts written for ``mox queue`` work unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from core.flaghelp import flag_help
from core.goflags import BOOL, STR, UsageError, go_quote, parse_flags
from core.gofmt import marshal_indent
from core.plugin_api import CtlCommand, CtlRequest, CtlResult, PluginContext
from core.queue.admin import QueueFilter, QueueSort, RetiredFilter, RetiredSort
from core.queue.jsonfmt import retired_json
from core.queue.timefmt import (
    TimeExprError,
    format_go_duration,
    format_rfc3339,
    parse_go_duration,
)
from core.sqlfilter import FilterError
from core.store.queue_rows import QueueEntryNotFound

if TYPE_CHECKING:  # pragma: no cover
    from core.queue.service import QueueService


_BOOL = BOOL
_STR = STR


def _truthy(v: str) -> bool:
    return v.lower() in ("true", "1", "t")


def _int(v: str, name: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise UsageError(f'invalid value "{v}" for flag -{name}: parse error') from None


def _ids(v: str) -> list[int]:
    return [_int(x.strip(), "ids") for x in v.split(",") if x.strip()]


_FILTER_FLAGS = {
    "ids": _STR,
    "n": _STR,
    "account": _STR,
    "from": _STR,
    "to": _STR,
    "submitted": _STR,
    "nextattempt": _STR,
    "transport": _STR,
    "hold": _STR,
}


def queue_filter(values: dict[str, str]) -> QueueFilter:
    f = QueueFilter()
    if "ids" in values:
        f.IDs = _ids(values["ids"])
    if "n" in values:
        f.Max = _int(values["n"], "n")
    f.Account = values.get("account", "")
    f.From = values.get("from", "")
    f.To = values.get("to", "")
    f.Submitted = values.get("submitted", "")
    f.NextAttempt = values.get("nextattempt", "")
    if "transport" in values:
        f.Transport = values["transport"]
    if "hold" in values:
        v = values["hold"].lower()
        if v not in ("true", "false"):
            raise UsageError(f'invalid value "{values["hold"]}" for flag -hold: parsing bool')
        f.Hold = v == "true"
    return f


Handler = Callable[["QueueService", list[str]], Awaitable[str]]


def _wrap(
    queue: QueueService, fn: Handler
) -> Callable[[PluginContext, CtlRequest], Awaitable[CtlResult]]:
    async def handler(ctx: PluginContext, req: CtlRequest) -> CtlResult:
        try:
            return CtlResult(await fn(queue, list(req.args)))
        except UsageError as exc:
            return CtlResult(f"{exc}\n", 2)
        except (FilterError, TimeExprError) as exc:
            return CtlResult(f"{exc}\n", 1)
        except QueueEntryNotFound as exc:
            return CtlResult(f"message {exc.args[0]} not found\n", 1)

    return handler


def _sender(e: Any) -> str:
    return e.sender_address if e.sender_localpart or e.sender_domain_str else "<>"


def _original_sender(e: Any, separators: list[str]) -> str:
    """The sender before a fromid was added to its localpart (``mox+ID@x`` -> ``mox@x``).

    A retired message is listed by who sent it; the fromid address was only
    its MAIL FROM, made for matching DSNs.
    """
    if e.from_id:
        for sep in separators:
            suffix = sep + e.from_id
            if e.sender_localpart.endswith(suffix) and len(e.sender_localpart) > len(suffix):
                return f"{e.sender_localpart[: -len(suffix)]}@{e.sender_domain_str}"
    return _sender(e)


async def cmd_list(q: QueueService, args: list[str]) -> str:
    values, rest = parse_flags(args, _LIST_SPEC)
    if rest:
        raise UsageError("usage: queue list [filtersortflags]")
    f = queue_filter(values)
    field = {"": "", "nextattempt": "NextAttempt", "queued": "Queued"}.get(values.get("sort", ""))
    if field is None:
        raise UsageError(f'invalid value "{values["sort"]}" for flag -sort')
    entries = await q.list(f, QueueSort(Field=field, Asc=_truthy(values.get("asc", "false"))))
    now = q.clock.now()
    lines = ["messages:"]
    for e in entries:
        last = format_go_duration(now - e.last_attempt) if e.last_attempt else ""
        err = e.results[-1].error if e.results else ""
        lines.append(
            f"{e.id:5d} {format_rfc3339(e.queued)} from:{_sender(e)} to:{e.recipient}"
            f" next {format_go_duration(e.next_attempt - now)} last {last} error {go_quote(err)}"
        )
    if not entries:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def _filter_only(args: list[str], usage: str, npos: int) -> tuple[QueueFilter, list[str]]:
    values, rest = parse_flags(args, dict(_FILTER_FLAGS))
    if len(rest) != npos:
        raise UsageError(f"usage: {usage}")
    return queue_filter(values), rest


async def cmd_hold(q: QueueService, args: list[str]) -> str:
    f, _ = _filter_only(args, "queue hold [filterflags]", 0)
    return f"{await q.hold(f)} messages changed\n"


async def cmd_unhold(q: QueueService, args: list[str]) -> str:
    f, _ = _filter_only(args, "queue unhold [filterflags]", 0)
    return f"{await q.unhold(f)} messages changed\n"


async def cmd_schedule(q: QueueService, args: list[str]) -> str:
    values, rest = parse_flags(args, {**_FILTER_FLAGS, "now": _BOOL})
    if len(rest) != 1:
        raise UsageError("usage: queue schedule [filterflags] [-now] duration")
    try:
        d = parse_go_duration(rest[0])
    except TimeExprError as exc:
        raise UsageError(f"parsing duration: {exc}") from exc
    n = await q.schedule(queue_filter(values), d, from_now=_truthy(values.get("now", "false")))
    return f"{n} message(s) rescheduled\n"


async def cmd_transport(q: QueueService, args: list[str]) -> str:
    f, rest = _filter_only(args, "queue transport [filterflags] transport", 1)
    return f"{await q.transport(f, rest[0])} message(s) changed\n"


async def cmd_requiretls(q: QueueService, args: list[str]) -> str:
    f, rest = _filter_only(args, "queue requiretls [filterflags] {yes | no | default}", 1)
    value = {"yes": True, "no": False, "default": None}
    if rest[0] not in value:
        raise UsageError("usage: queue requiretls [filterflags] {yes | no | default}")
    return f"{await q.requiretls(f, value[rest[0]])} message(s) changed\n"


async def cmd_fail(q: QueueService, args: list[str]) -> str:
    f, _ = _filter_only(args, "queue fail [filterflags]", 0)
    return f"{await q.fail(f)} message(s) marked as failed\n"


async def cmd_drop(q: QueueService, args: list[str]) -> str:
    f, _ = _filter_only(args, "queue drop [filterflags]", 0)
    return f"{await q.drop(f)} message(s) dropped\n"


async def cmd_dump(q: QueueService, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError("usage: queue dump id")
    data = await q.open_message(_int(args[0], "id"))
    return data.decode("utf-8", errors="surrogateescape").encode("utf-8", "replace").decode("utf-8")


async def cmd_retired_list(q: QueueService, args: list[str]) -> str:
    values, rest = parse_flags(args, _RETIRED_SPEC)
    if rest:
        raise UsageError("usage: queue retired list [filtersortflags]")
    f = RetiredFilter(
        Account=values.get("account", ""),
        From=values.get("from", ""),
        To=values.get("to", ""),
        Submitted=values.get("submitted", ""),
        LastActivity=values.get("lastactivity", ""),
    )
    if "ids" in values:
        f.IDs = _ids(values["ids"])
    if "n" in values:
        f.Max = _int(values["n"], "n")
    if "transport" in values:
        f.Transport = values["transport"]
    if "result" in values:
        r = values["result"]
        if r not in ("success", "failure"):
            raise UsageError(f'invalid value "{r}" for flag -result: expected success or failure')
        f.Success = r == "success"
    field = {"": "", "lastactivity": "LastActivity", "queued": "Queued"}.get(values.get("sort", ""))
    if field is None:
        raise UsageError(f'invalid value "{values["sort"]}" for flag -sort')
    entries = await q.retired_list(
        f, RetiredSort(Field=field, Asc=_truthy(values.get("asc", "false")))
    )
    now = q.clock.now()
    lines = ["retired messages:"]
    for e in entries:
        last = format_go_duration(now - e.last_attempt) if e.last_attempt else ""
        err = e.results[-1].error if e.results else ""
        result = "success" if e.success else "failure"
        seps = q.ctx.config.catchall_separators(e.sender_domain_str) if e.from_id else []
        lines.append(
            f"{e.id:5d} {format_rfc3339(e.queued)} {result} from:{_original_sender(e, seps)}"
            f" to:{e.recipient}"
            f" last {last} error {go_quote(err)}"
        )
    if not entries:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


async def cmd_retired_print(q: QueueService, args: list[str]) -> str:
    if len(args) != 1:
        raise UsageError("usage: queue retired print id")
    return marshal_indent(retired_json(await q.get_retired(_int(args[0], "id"))))


_LIST_SPEC = {**_FILTER_FLAGS, "sort": _STR, "asc": _BOOL}
_RETIRED_SPEC = {
    **{k: _FILTER_FLAGS[k] for k in ("ids", "n", "account", "from", "to", "submitted")},
    "lastactivity": _STR,
    "transport": _STR,
    "result": _STR,
    "sort": _STR,
    "asc": _BOOL,
}


def queue_commands(queue: QueueService) -> list[CtlCommand]:
    """The queue's control commands, bound to ``queue``."""
    filt = flag_help(_FILTER_FLAGS)
    table: list[tuple[tuple[str, ...], Handler, str, str, tuple[tuple[str, str], ...]]] = [
        (("queue", "list"), cmd_list, "list messages in the queue", "[filtersortflags]",
         flag_help(_LIST_SPEC, sort='field to sort by, "nextattempt" (default) or "queued"')),
        (("queue", "hold"), cmd_hold, "mark matching messages on hold", "[filterflags]", filt),
        (("queue", "unhold"), cmd_unhold, "release matching messages from hold", "[filterflags]", filt),
        (("queue", "schedule"), cmd_schedule, "change next delivery attempt of matching messages",
         "[filterflags] [-now] duration", flag_help({**_FILTER_FLAGS, "now": _BOOL})),
        (("queue", "transport"), cmd_transport, "set transport of matching messages",
         "[filterflags] transport", filt),
        (("queue", "requiretls"), cmd_requiretls, "set requiretls of matching messages",
         "[filterflags] {yes | no | default}", filt),
        (("queue", "fail"), cmd_fail, "fail delivery of matching messages, with DSN", "[filterflags]", filt),
        (("queue", "drop"), cmd_drop, "remove matching messages, without DSN", "[filterflags]", filt),
        (("queue", "dump"), cmd_dump, "print a queued message", "id", ()),
        (("queue", "retired", "list"), cmd_retired_list, "list retired messages", "[filtersortflags]",
         flag_help(_RETIRED_SPEC, sort='field to sort by, "lastactivity" (default) or "queued"')),
        (("queue", "retired", "print"), cmd_retired_print, "print a retired message as JSON", "id", ()),
    ]
    return [
        CtlCommand(path, _wrap(queue, fn), help, usage, flags) for path, fn, help, usage, flags in table
    ]
