"""Go-compatible command-line details for control commands.

moxtrio's commands accept mox's flags and print what mox prints, so scripts
written for ``mox`` keep working: flags are parsed the way Go's ``flag``
package does, and strings are quoted like Go's ``%q``. Shared by the core's
queue commands and plugins' commands.
"""

from __future__ import annotations

BOOL = "bool"
STR = "str"


class UsageError(ValueError):
    """Bad command line: printed before the usage text, exit status 2 (Go's flag)."""


def parse_flags(args: list[str], spec: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """Parse ``-name value``/``-name=value`` flags (``spec``: name -> BOOL|STR).

    Returns the flag values as given (booleans as "true"/"false"...) and the
    positional arguments after the flags.
    """
    values: dict[str, str] = {}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name = a[2:] if a.startswith("--") else a[1:]
        if not name or name.startswith("-") or name.startswith("="):
            raise UsageError(f"bad flag syntax: {a}")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        kind = spec.get(name)
        if kind is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if kind == BOOL:
            if value is None:
                value = "true"
            if value.lower() not in ("true", "false", "1", "0", "t", "f"):
                raise UsageError(f'invalid boolean value "{value}" for -{name}')
        elif value is None:
            i += 1
            if i >= len(args):
                raise UsageError(f"flag needs an argument: -{name}")
            value = args[i]
        values[name] = value
        i += 1
    return values, args[i:]


_SIMPLE_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def go_quote(s: str) -> str:
    """Go's ``%q`` for a string: double quotes, backslash escapes, printable Unicode kept."""
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[ch])
        elif c < 0x20 or c == 0x7F:
            out.append(f"\\x{c:02x}")
        elif ch == " " or ch.isprintable():
            out.append(ch)
        elif c < 0x10000:
            out.append(f"\\u{c:04x}")
        else:
            out.append(f"\\U{c:08x}")
    out.append('"')
    return "".join(out)


_TIME = 'relative to now, value must start with "<" (before now) or ">" (after now)'
_DOMAIN = 'use "@example.com" to match all messages for a domain'

#: mox's descriptions of the flags its queue and webhook commands share,
#: for ``moxtrio help`` and ``-h``.
FLAG_HELP = {
    "ids": "comma-separated list of IDs",
    "n": "number of items to return",
    "account": "account that queued the message",
    "from": f"from address of message, {_DOMAIN}",
    "to": f"recipient address of message, {_DOMAIN}",
    "submitted": f"filter by time of submission {_TIME}",
    "nextattempt": f"filter by time of next delivery attempt {_TIME}",
    "lastactivity": f"filter by time of last activity {_TIME}",
    "transport": "transport to use for messages, empty string sets the default behaviour",
    "hold": "true or false, whether to match only messages that are (not) on hold",
    "result": '"success" or "failure" as result of delivery',
    "event": "event this webhook is about: incoming, delivered, suppressed, delayed, failed, "
    "relayed, expanded, canceled, unrecognized",
    "sort": 'field to sort by, "nextattempt" or "lastactivity" (default) or "queued"',
    "asc": "sort ascending instead of descending (default)",
    "now": "schedule for duration relative to current time instead of relative to current next "
    "delivery attempt",
    "senderdom": "sender domain",
    "recipientdom": "recipient domain",
}


def flag_help(spec: dict[str, str], **overrides: str) -> tuple[tuple[str, str], ...]:
    """``(flag, description)`` pairs for a parse spec, for :class:`CtlCommand.flags`."""
    texts = {**FLAG_HELP, **overrides}
    return tuple(
        (f"-{name}" + ("" if kind == BOOL else " value"), texts.get(name, "")) for name, kind in spec.items()
    )
