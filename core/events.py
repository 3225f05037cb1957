"""Data handed to hooks at the moments of the mail flow.

These are the payloads of the hooks in :mod:`core.hookspecs`. They carry what
the webhooks, suppression and hold-rule plugins need so a
plugin never has to reach back into core tables to react to an event.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

EventName = Literal[
    "delivered",
    "suppressed",
    "delayed",
    "failed",
    "relayed",
    "expanded",
    "canceled",
    "unrecognized",
    "complaint",
]

OUTGOING_EVENTS: tuple[EventName, ...] = (
    "delivered",
    "suppressed",
    "delayed",
    "failed",
    "relayed",
    "expanded",
    "canceled",
    "unrecognized",
    # moxtrio extension, sent only to accounts that list it in Events.
    "complaint",
)


@dataclass
class IncomingAuthenticated:
    """An incoming message after authentication, before it is stored.

    ``auth`` is a ``core.mailauth.analyze.Authentication``; plugins may add
    header lines (``"Name: value"``) to ``add_headers``.
    """

    remote_ip: str
    mail_from: str
    recipients: list[str]
    auth: Any
    add_headers: list[str] = field(default_factory=list)


@dataclass
class Submission:
    """A message about to be queued, from SMTP submission or webapi Send.

    ``headers`` are the message's header fields as ``(name, value)`` pairs in
    order (for webapi Send: the request's custom ``Headers``); ``extra`` is
    filled by plugins and travels with every queue entry into webhooks.

    A plugin changes the message with :meth:`add_header` and
    :meth:`remove_header`. The core applies the edits after every plugin
    ran and before DKIM signing, so added fields are covered by the
    signature: added fields go on top of the message (below Received), and
    a removed name drops every field of that name from the message and from
    the fields other plugins added.
    """

    account: str
    source: Literal["smtp", "webapi"]
    mail_from: str
    recipients: list[str]
    headers: list[tuple[str, str]]
    extra: dict[str, str] = field(default_factory=dict)
    added_headers: list[tuple[str, str]] = field(default_factory=list)
    removed_headers: list[str] = field(default_factory=list)

    def add_header(self, name: str, value: str) -> None:
        """Add a header field; ValueError for a bad name or a value with CR, LF or NUL."""
        if not name or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
            raise ValueError(f"invalid header field name {name!r}")
        if any(c in value for c in "\r\n\0"):
            raise ValueError(f"header field {name}: value may not contain CR, LF or NUL")
        self.added_headers.append((name, value))

    def remove_header(self, name: str) -> None:
        """Remove every field named ``name`` (case-insensitive) from the message."""
        self.removed_headers.append(name)
        self.added_headers = [(k, v) for k, v in self.added_headers if k.lower() != name.lower()]

    def added_header_lines(self) -> bytes:
        """The added fields as header lines, in the order added."""
        return b"".join(f"{k}: {v}\r\n".encode() for k, v in self.added_headers)


@dataclass
class DeliveryOutcome:
    """The result of one recipient's delivery attempt, as the core records it."""

    event: EventName
    permanent: bool = False
    smtp_code: int = 0
    smtp_enhanced_code: str = ""
    error: str = ""
    remote_host: str = ""
    #: The failure was reported by an incoming DSN, not seen in an attempt.
    dsn: bool = False


@dataclass
class DeliveryBatch:
    """Recipients of one message to one domain, delivered in one transaction."""

    entries: list[Any]
    message_path: str
    msg_prefix: bytes
    mail_from: str
    recipients: list[str]
    domain: str
    has8bit: bool = False
    smtputf8: bool = False
    require_tls: bool | None = None


@dataclass
class OutgoingEvent:
    """One outgoing delivery event for webhooks."""

    account: str
    event: EventName
    queue_msg_id: int
    from_id: str
    message_id: str
    subject: str
    dsn: bool = False
    suppressing: bool = False
    smtp_code: int = 0
    smtp_enhanced_code: str = ""
    error: str = ""
    extra: dict[str, str] | None = None
    recipient: str = ""
    #: For events derived from an incoming message (a DSN, a reply to a
    #: fromid address): that message's Message-Id. mox records it on the
    #: webhook (``queue webhook list``); the payload keeps the original's.
    incoming_message_id: str = ""


@dataclass
class CommittedEvent:
    """An event whose transaction committed, for ``moxtrio_after_commit``.

    ``id`` is unique for the server's lifetime and the same on every
    delivery of the event: a plugin that must act once keeps the ids it
    handled. ``kind`` is ``"outgoing"`` (``event`` is an OutgoingEvent);
    ``created_us`` is when it was recorded, in microseconds since the epoch.
    """

    id: int
    kind: Literal["outgoing"]
    event: OutgoingEvent
    created_us: int


@dataclass
class IncomingDelivered:
    """A message stored in an account's mailbox through SMTP delivery.

    ``meta`` holds mox's IncomingMeta keys the core knows (MsgID, MailFrom,
    MailFromValidated, MsgFromValidated, RcptTo, DKIMVerifiedDomains,
    RemoteIP, Received, MailboxName); ``message_path`` is the stored file,
    ``msg_prefix`` the header lines stored before it.
    """

    account: str
    message_id: int
    mailbox: str
    message_path: str
    msg_prefix: bytes = b""
    mail_from: str = ""
    rcpt_to: str = ""
    meta: dict[str, Any] = field(default_factory=dict)
    #: The parsed incoming-webhook fields From..Structure,
    #: prepared by :mod:`core.queue.dsnmatch` outside the writer thread; None
    #: means a consumer parses the stored file itself.
    fields: dict[str, Any] | None = None
