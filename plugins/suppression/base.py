"""Base addresses: mox's deliberately lossy simplification of a recipient.

One mailbox is often reachable under many spellings (``John.Doe+news@``,
``johndoe-x@``, ``j.o.h.n.doe@``); a suppression must catch them all, so
every lookup goes through the base address. The rule is mox's, independent
of the domain's catchall separators, and accepts that different people can
collide (``anna-lena@`` and ``anna@``).

Addresses typed by people (webapi, commands) are parsed with mox's strict
SMTP grammar (:func:`core.message.address.parse_address`): IP literals and
malformed addresses are refused there (webapi code ``badAddress``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from core.message.address import AddressError, localpart_string, parse_address

__all__ = [
    "AddressError",
    "EntryLike",
    "RecipientAddress",
    "base_localpart",
    "go_lower",
    "parse_recipient",
    "recipient_of_entry",
]


def go_lower(s: str) -> str:
    """Lowercase one character at a time, as Go's ``strings.ToLower`` does.

    Python's ``str.lower`` is context-sensitive (final sigma) and expands
    U+0130 to two characters; Go maps every rune on its own. Base addresses
    stored by mox must compare equal to ours, so we lowercase like Go.
    """
    out = []
    for ch in s:
        if ch == "\u0130":  # LATIN CAPITAL LETTER I WITH DOT ABOVE -> "i" in Go
            out.append("i")
            continue
        low = ch.lower()
        out.append(low if len(low) == 1 else ch)
    return "".join(out)


def base_localpart(localpart: str) -> str:
    """mox's base localpart (everything up to the base address's re-quoting) of an unquoted localpart."""
    s = localpart.split("+", 1)[0]
    s = s.split("-", 1)[0]
    s = s.replace(".", "")
    return go_lower(s)


@dataclass(frozen=True)
class RecipientAddress:
    """A recipient as the suppression list sees it.

    ``localpart`` is unquoted; ``domain`` is the Unicode form (or ``[ip]``
    for an IP literal of a queue entry).
    """

    localpart: str
    domain: str

    @property
    def original(self) -> str:
        """OriginalAddress: localpart as given (quoted if needed), Unicode domain."""
        return f"{localpart_string(self.localpart)}@{self.domain}"

    @property
    def base(self) -> str:
        """BaseAddress: re-quoted when the localpart is not a dot-atom."""
        return f"{localpart_string(base_localpart(self.localpart))}@{self.domain}"


def parse_recipient(address: str) -> RecipientAddress:
    """Parse an address given by a person; raises AddressError (``badAddress``)."""
    a = parse_address(address)
    return RecipientAddress(a.localpart, a.domain.unicode)


class EntryLike(Protocol):
    """What we read of a core queue/retired entry (``core.store.models.QueueEntry``)."""

    recipient_localpart: str
    recipient_domain_str: str


def recipient_of_entry(entry: EntryLike) -> RecipientAddress:
    """The recipient of a core queue or retired entry."""
    return RecipientAddress(entry.recipient_localpart, entry.recipient_domain_str)
