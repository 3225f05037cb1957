"""``queue suppress list|add|remove|lookup``: mox's names, flags and output.

The commands are the administrator's: they name the account (or, for
``list`` and ``lookup``, may leave it out to mean every account). Output
copies mox's, including the "base adddress" typo in the list header, since
scripts may parse it. Errors print as mox's ctl does (``<doing>: <error>``)
with exit status 1; bad usage exits 2 like Go's flag package.
"""

from __future__ import annotations

from core.goflags import UsageError, go_quote, parse_flags
from core.gofmt import format_go_time_seconds
from moxtrio import CtlCommand, CtlRequest, CtlResult, PluginContext
from plugins.suppression.base import AddressError, RecipientAddress, parse_recipient
from plugins.suppression.records import DuplicateSuppression, Suppression, SuppressionAbsent
from plugins.suppression.service import SuppressionService

CLI_REASON = "added through mox cli"
LIST_HEADER = "suppressions (account, address, manual, time added, base adddress, reason):"

_ACCOUNT_FLAG = "  -account string\n    \t{}\n"
USAGE_LIST = "usage: moxtrio queue suppress list [-account account]\n" + _ACCOUNT_FLAG.format(
    "only show suppression list for this account"
)
USAGE_ADD = "usage: moxtrio queue suppress add account address\n"
USAGE_REMOVE = "usage: moxtrio queue suppress remove account address\n"
USAGE_LOOKUP = "usage: moxtrio queue suppress lookup [-account account] address\n" + (
    _ACCOUNT_FLAG.format("only check address in specified account")
)


def format_list(entries: list[Suppression]) -> str:
    """The text of ``queue suppress list``."""
    lines = [LIST_HEADER]
    for s in entries:
        lines.append(
            "\t".join(
                [
                    go_quote(s.account),
                    go_quote(s.original_address),
                    "Yes" if s.manual else "No",
                    format_go_time_seconds(s.created),
                    go_quote(s.base_address),
                    go_quote(s.reason),
                ]
            )
        )
    if not entries:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def format_lookup(sup: Suppression | None) -> str:
    """The text of ``queue suppress lookup``."""
    if sup is None:
        return "not present\n"
    return (
        f"present\nadded: {format_go_time_seconds(sup.created)}\n"
        f"manual: {'yes' if sup.manual else 'no'}\n"
        f"base address: {sup.base_address}\n"
        f"reason: {go_quote(sup.reason)}\n"
    )


def _service(ctx: PluginContext) -> SuppressionService:
    return ctx.service(SuppressionService) or SuppressionService(ctx)


def _parse(
    req: CtlRequest, flags: set[str], nargs: int, usage: str
) -> tuple[dict[str, str], list[str]] | CtlResult:
    try:
        values, rest = parse_flags(req.args, {f: "str" for f in flags})
    except UsageError as exc:
        return CtlResult(f"{exc}\n{usage}", 2)
    if len(rest) != nargs:
        return CtlResult(usage, 2)
    return values, rest


def _address(raw: str) -> RecipientAddress | CtlResult:
    try:
        return parse_recipient(raw)
    except AddressError as exc:
        return CtlResult(f"parsing address: {exc}\n", 1)


def _unknown_account(ctx: PluginContext, account: str) -> CtlResult | None:
    """mox's error for add and lookup, with the name added; used by every command here."""
    if ctx.config.account(account) is None:
        return CtlResult(f"looking up account: unknown account {go_quote(account)}\n", 1)
    return None


async def cmd_list(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    parsed = _parse(req, {"account"}, 0, USAGE_LIST)
    if isinstance(parsed, CtlResult):
        return parsed
    flags, _ = parsed
    # mox lists nothing for an unknown account; a typo deserves an error.
    if flags.get("account"):
        bad = _unknown_account(ctx, flags["account"])
        if bad is not None:
            return bad
    entries = await _service(ctx).list(flags.get("account", ""))
    return CtlResult(format_list(entries))


async def cmd_add(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    parsed = _parse(req, set(), 2, USAGE_ADD)
    if isinstance(parsed, CtlResult):
        return parsed
    _, (account, raw) = parsed
    bad = _unknown_account(ctx, account)
    if bad is not None:
        return bad
    rcpt = _address(raw)
    if isinstance(rcpt, CtlResult):
        return rcpt
    try:
        await _service(ctx).add(account, rcpt, manual=True, reason=CLI_REASON)
    except DuplicateSuppression as exc:
        return CtlResult(f"adding suppression: {exc}\n", 1)
    return CtlResult("")


async def cmd_remove(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    parsed = _parse(req, set(), 2, USAGE_REMOVE)
    if isinstance(parsed, CtlResult):
        return parsed
    _, (account, raw) = parsed
    bad = _unknown_account(ctx, account)
    if bad is not None:
        return bad
    rcpt = _address(raw)
    if isinstance(rcpt, CtlResult):
        return rcpt
    try:
        await _service(ctx).remove(account, rcpt)
    except SuppressionAbsent as exc:
        return CtlResult(f"removing suppression: {exc}\n", 1)
    return CtlResult("")


async def cmd_lookup(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    parsed = _parse(req, {"account"}, 1, USAGE_LOOKUP)
    if isinstance(parsed, CtlResult):
        return parsed
    flags, (raw,) = parsed
    account = flags.get("account", "")
    if account:
        bad = _unknown_account(ctx, account)
        if bad is not None:
            return bad
    rcpt = _address(raw)
    if isinstance(rcpt, CtlResult):
        return rcpt
    return CtlResult(format_lookup(await _service(ctx).lookup(account, rcpt)))


def ctl_commands() -> list[CtlCommand]:
    return [
        CtlCommand(
            ("queue", "suppress", "list"),
            cmd_list,
            "list suppression lists, of one account or all",
            "[-account account]",
            (("-account value", "only show suppression list for this account"),),
        ),
        CtlCommand(
            ("queue", "suppress", "add"),
            cmd_add,
            "add address to suppression list for account",
            "account address",
        ),
        CtlCommand(
            ("queue", "suppress", "remove"),
            cmd_remove,
            "remove address from suppression list for account",
            "account address",
        ),
        CtlCommand(
            ("queue", "suppress", "lookup"),
            cmd_lookup,
            "check if address is present in suppression list, for any or specific account",
            "[-account account] address",
            (("-account value", "only check address in specified account"),),
        ),
    ]
