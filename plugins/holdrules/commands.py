"""``queue holdrules list|add|remove``: mox's command names, flags and output.

Scripts written for ``mox queue holdrules …`` must work with the binary name
changed, so flags are parsed the way Go's ``flag`` package does (``-f v``,
``-f=v``, ``--f v``; parsing stops at the first non-flag argument or ``--``)
and the list output copies mox's, including its quirk of labelling the
recipient-domain condition "sender domain".
"""

from __future__ import annotations

from core.flaghelp import flag_help
from core.goflags import STR, UsageError, go_quote, parse_flags
from moxtrio import CtlCommand, CtlRequest, CtlResult, PluginContext
from plugins.holdrules.rules import HoldRule, HoldRuleError, HoldRuleNotFound
from plugins.holdrules.service import HoldRuleService

USAGE_LIST = "usage: moxtrio queue holdrules list\n"
USAGE_ADD = (
    "usage: moxtrio queue holdrules add [-account ACCOUNT] [-senderdom DOMAIN]"
    " [-recipientdom DOMAIN]\n"
    "  -account string\n\taccount submitting the message\n"
    "  -recipientdom string\n\trecipient domain\n"
    "  -senderdom string\n\tsender domain\n"
)
USAGE_REMOVE = "usage: moxtrio queue holdrules remove ruleid\n"


def format_rules(rules: list[HoldRule]) -> str:
    """The text mox prints for ``queue holdrules list``."""
    lines = ["hold rules:"]
    for r in rules:
        elems = []
        if r.account:
            elems.append(f"account {go_quote(r.account)}")
        if not r.sender_domain.is_zero:
            elems.append(f"sender domain {go_quote(r.sender_domain.name())}")
        if not r.recipient_domain.is_zero:
            # mox's label, kept on purpose: scripts may parse it.
            elems.append(f"sender domain {go_quote(r.recipient_domain.name())}")
        if elems:
            lines.append(f"id {r.id}: {', '.join(elems)}")
        else:
            lines.append(f"id {r.id}: all messages")
    if not rules:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def _service(ctx: PluginContext) -> HoldRuleService:
    return ctx.service(HoldRuleService) or HoldRuleService(ctx)


async def cmd_list(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    try:
        _, rest = parse_flags(req.args, {})
    except UsageError as exc:
        return CtlResult(f"{exc}\n{USAGE_LIST}", 2)
    if rest:
        return CtlResult(USAGE_LIST, 2)
    rules = await _service(ctx).list()
    return CtlResult(format_rules(rules))


async def cmd_add(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    try:
        flags, rest = parse_flags(req.args, dict.fromkeys(("account", "senderdom", "recipientdom"), STR))
    except UsageError as exc:
        return CtlResult(f"{exc}\n{USAGE_ADD}", 2)
    if rest:
        return CtlResult(USAGE_ADD, 2)
    try:
        await _service(ctx).add(
            flags.get("account", ""), flags.get("senderdom", ""), flags.get("recipientdom", "")
        )
    except HoldRuleError as exc:
        return CtlResult(f"{exc}\n", 1)
    # mox prints nothing when the rule was added.
    return CtlResult("")


async def cmd_remove(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    try:
        _, rest = parse_flags(req.args, {})
    except UsageError as exc:
        return CtlResult(f"{exc}\n{USAGE_REMOVE}", 2)
    if len(rest) != 1:
        return CtlResult(USAGE_REMOVE, 2)
    raw = rest[0]
    try:
        if not raw.lstrip("+-").isascii() or not raw.lstrip("+-").isdigit():
            raise ValueError
        rule_id = int(raw)
    except ValueError:
        return CtlResult(f'parsing id: strconv.ParseInt: parsing "{raw}": invalid syntax\n', 1)
    try:
        await _service(ctx).remove(rule_id)
    except HoldRuleNotFound:
        # mox's text: its database's error for a missing record.
        return CtlResult("remove hold rule: absent\n", 1)
    return CtlResult("")


def ctl_commands() -> list[CtlCommand]:
    return [
        CtlCommand(("queue", "holdrules", "list"), cmd_list, "list hold rules"),
        CtlCommand(
            ("queue", "holdrules", "add"),
            cmd_add,
            "add a hold rule: matching new and queued messages are held",
            "[ruleflags]",
            flag_help(
                dict.fromkeys(("account", "senderdom", "recipientdom"), STR),
                account="account submitting the message",
            ),
        ),
        CtlCommand(
            ("queue", "holdrules", "remove"),
            cmd_remove,
            "remove a hold rule (held messages stay held)",
            "ruleid",
        ),
    ]
