"""Request and response types of the webapi, with mox's JSON field names.

These dataclasses are the single description of the wire format: the server
decodes requests into them and encodes results from them
(:mod:`plugins.webapi.jsoncodec`), the method pages build their example JSON
from them, ``openapi.json`` is generated from them, and the typed client
(:mod:`plugins.webapi.client`) uses them too. Field names are Go's (they are
the JSON keys), declaration order is the JSON key order.

Typing conventions the codec and the OpenAPI generator understand:

* ``list[T]`` is a Go slice: ``null`` on input is an empty list, and output
  never has ``null`` for it (``[]``);
* ``dict[str, str]`` is a Go map (``{}`` on output when empty);
* ``T | None`` is a Go pointer: ``null`` is kept on output;
* ``datetime`` is a Go ``time.Time`` (RFC 3339 string);
* ``tuple[str, str]`` is a Go ``[2]string``.

Importable without a server (the client uses it): only stdlib imports, plus
the core's ``Structure`` so the MIME structure is described once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from core.message.structure import Structure

__all__ = [
    "NameAddress",
    "File",
    "Message",
    "SendRequest",
    "SendResult",
    "Submission",
    "Suppression",
    "SuppressionListRequest",
    "SuppressionListResult",
    "SuppressionAddRequest",
    "SuppressionAddResult",
    "SuppressionRemoveRequest",
    "SuppressionRemoveResult",
    "SuppressionPresentRequest",
    "SuppressionPresentResult",
    "MessageGetRequest",
    "MessageGetResult",
    "MessageMeta",
    "MessageRawGetRequest",
    "MessagePartGetRequest",
    "MessageDeleteRequest",
    "MessageDeleteResult",
    "MessageFlagsAddRequest",
    "MessageFlagsAddResult",
    "MessageFlagsRemoveRequest",
    "MessageFlagsRemoveResult",
    "MessageMoveRequest",
    "MessageMoveResult",
    "Structure",
    "Error",
    "MethodInfo",
    "METHODS",
    "ERROR_CODES",
]


@dataclass
class NameAddress:
    """An address with an optional display name."""

    Name: str = ""
    Address: str = ""


@dataclass
class File:
    """A file for Send: ``Data`` is standard base64 (padding required)."""

    Name: str = ""
    ContentType: str = ""
    ContentID: str = ""
    Data: str = ""


@dataclass
class Message:
    """A message as MessageGet reports it (and the first half of SendRequest)."""

    From: list[NameAddress] = field(default_factory=list)
    To: list[NameAddress] = field(default_factory=list)
    CC: list[NameAddress] = field(default_factory=list)
    BCC: list[NameAddress] = field(default_factory=list)
    ReplyTo: list[NameAddress] = field(default_factory=list)
    MessageID: str = ""
    References: list[str] = field(default_factory=list)
    Date: datetime | None = None
    Subject: str = ""
    Text: str = ""
    HTML: str = ""


@dataclass
class SendRequest(Message):
    """Send: the Message fields flattened, plus what only sending needs."""

    Extra: dict[str, str] | None = None
    Headers: list[tuple[str, str]] = field(default_factory=list)
    AlternativeFiles: list[File] = field(default_factory=list)
    InlineFiles: list[File] = field(default_factory=list)
    AttachedFiles: list[File] = field(default_factory=list)
    RequireTLS: bool | None = None
    FutureRelease: datetime | None = None
    SaveSent: bool = False


@dataclass
class Submission:
    """One queued recipient of a Send: the address as given and its queue id."""

    Address: str = ""
    QueueMsgID: int = 0
    FromID: str = ""


@dataclass
class SendResult:
    MessageID: str = ""
    Submissions: list[Submission] = field(default_factory=list)


@dataclass
class Suppression:
    """An entry of the account's suppression list."""

    ID: int = 0
    Created: datetime = field(default_factory=lambda: datetime.min)
    Account: str = ""
    BaseAddress: str = ""
    OriginalAddress: str = ""
    Manual: bool = False
    Reason: str = ""


@dataclass
class SuppressionListRequest:
    pass


@dataclass
class SuppressionListResult:
    Suppressions: list[Suppression] = field(default_factory=list)


@dataclass
class SuppressionAddRequest:
    EmailAddress: str = ""
    Manual: bool = False
    Reason: str = ""


@dataclass
class SuppressionAddResult:
    pass


@dataclass
class SuppressionRemoveRequest:
    EmailAddress: str = ""


@dataclass
class SuppressionRemoveResult:
    pass


@dataclass
class SuppressionPresentRequest:
    EmailAddress: str = ""


@dataclass
class SuppressionPresentResult:
    Present: bool = False


@dataclass
class MessageMeta:
    """What the server knew when it stored the message (empty for Sent copies)."""

    Size: int = 0
    DSN: bool = False
    Flags: list[str] = field(default_factory=list)
    MailFrom: str = ""
    MailFromValidated: bool = False
    RcptTo: str = ""
    MsgFrom: str = ""
    MsgFromValidated: bool = False
    DKIMVerifiedDomains: list[str] = field(default_factory=list)
    RemoteIP: str = ""
    MailboxName: str = ""


@dataclass
class MessageGetRequest:
    MsgID: int = 0


@dataclass
class MessageGetResult:
    Message: Message = field(default_factory=Message)
    Structure: Structure = field(
        default_factory=lambda: Structure("", {}, "", "", "", 0, [])
    )
    Meta: MessageMeta = field(default_factory=MessageMeta)


@dataclass
class MessageRawGetRequest:
    MsgID: int = 0


@dataclass
class MessagePartGetRequest:
    MsgID: int = 0
    PartPath: list[int] = field(default_factory=list)


@dataclass
class MessageDeleteRequest:
    MsgID: int = 0


@dataclass
class MessageDeleteResult:
    pass


@dataclass
class MessageFlagsAddRequest:
    MsgID: int = 0
    Flags: list[str] = field(default_factory=list)


@dataclass
class MessageFlagsAddResult:
    pass


@dataclass
class MessageFlagsRemoveRequest:
    MsgID: int = 0
    Flags: list[str] = field(default_factory=list)


@dataclass
class MessageFlagsRemoveResult:
    pass


@dataclass
class MessageMoveRequest:
    MsgID: int = 0
    DestMailboxName: str = ""


@dataclass
class MessageMoveResult:
    pass


@dataclass
class Error:
    """The body of every 400 answer."""

    Code: str = ""
    Message: str = ""


#: Every error Code the server answers.
ERROR_CODES: tuple[str, ...] = (
    "protocol",
    "user",
    "server",
    "error",
    "badAddress",
    "missingBody",
    "multipleFrom",
    "badFrom",
    "domainDisabled",
    "noRecipients",
    "messageLimitReached",
    "recipientLimitReached",
    "messageTooLarge",
    "malformedMessageID",
    "sentOverQuota",
    "messageNotFound",
    "partNotFound",
)


@dataclass(frozen=True)
class MethodInfo:
    """A webapi method: its request type and its result type (None = raw bytes)."""

    name: str
    request: type
    result: type | None
    doc: str


#: moxtrio's extension methods (:mod:`plugins.webapi.ext_methods` has their
#: handlers, which import Quart): named here for the ASGI fast path, which
#: leaves them to the blueprint.
EXTENSION_NAMES = frozenset({"SuppressionExport", "SuppressionImport", "WebhookRedeliver"})

#: The methods in mox's (alphabetical) order.
METHODS: dict[str, MethodInfo] = {
    m.name: m
    for m in (
        MethodInfo(
            "MessageDelete", MessageDeleteRequest, MessageDeleteResult,
            "Permanently remove a message (no move to Trash).",
        ),
        MethodInfo(
            "MessageFlagsAdd", MessageFlagsAddRequest, MessageFlagsAddResult,
            "Set flags and keywords on a message.",
        ),
        MethodInfo(
            "MessageFlagsRemove", MessageFlagsRemoveRequest, MessageFlagsRemoveResult,
            "Clear flags and keywords of a message.",
        ),
        MethodInfo(
            "MessageGet", MessageGetRequest, MessageGetResult,
            "A stored message: parsed fields, MIME structure and metadata.",
        ),
        MethodInfo(
            "MessageMove", MessageMoveRequest, MessageMoveResult,
            "Move a message to another mailbox (exact name); it keeps its ID.",
        ),
        MethodInfo(
            "MessagePartGet", MessagePartGetRequest, None,
            "The transfer-decoded content of one MIME part (raw bytes).",
        ),
        MethodInfo(
            "MessageRawGet", MessageRawGetRequest, None,
            "The full stored message (raw bytes, text/plain).",
        ),
        MethodInfo(
            "Send", SendRequest, SendResult,
            "Compose a message and queue it for delivery to each recipient.",
        ),
        MethodInfo(
            "SuppressionAdd", SuppressionAddRequest, SuppressionAddResult,
            "Add an address to the account's suppression list.",
        ),
        MethodInfo(
            "SuppressionList", SuppressionListRequest, SuppressionListResult,
            "The account's suppression list.",
        ),
        MethodInfo(
            "SuppressionPresent", SuppressionPresentRequest, SuppressionPresentResult,
            "Whether an address is on the account's suppression list.",
        ),
        MethodInfo(
            "SuppressionRemove", SuppressionRemoveRequest, SuppressionRemoveResult,
            "Remove an address from the account's suppression list.",
        ),
    )
}
