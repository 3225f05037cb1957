"""Descriptions of command flags, for ``moxtrio help`` and ``COMMAND -h``.

Control commands parse their flags on the server (:func:`core.gofmt.parse_flags`);
their descriptions travel with the command (``CtlCommand.flags``) so the CLI can
show them without a server. The shared texts are mox's.
"""

from __future__ import annotations

from core.gofmt import BOOL

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
