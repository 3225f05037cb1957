"""The message methods: read, flag, move and delete stored messages.

IDs are global but scoped to the authenticated account: a message of
another account is "not found". Error codes follow mox: reading methods
answer ``messageNotFound`` (``message not found``) for a missing or removed
message; the modifying ones wrap the store's texts as ``getting message:
…`` with ``messageNotFound`` for an unknown id and ``user`` for a removed
message or id 0.
"""

from __future__ import annotations

import re
from typing import Any

import trio

from core.config.models import AutomaticJunkFlags
from core.message.headers import decode_rfc2047
from core.message.parsed import message_references, name_addresses, parse_date, text_html
from core.message.sniff import detect_content_type
from core.message.structure import PartNotFoundError, parse_part, part_by_path, part_structure
from core.store.accounts import MailboxNotFound
from core.store.messages import (
    AlreadyInMailbox,
    InvalidFlag,
    InvalidMessageID,
    MessageNotFound,
    MessageRemoved,
    add_flags,
    delete_message,
    get_message,
    move_message,
    parse_flags,
    remove_flags,
)
from core.store.models import Message as StoredMessage
from core.store.sql import Connection
from plugins.webapi.errors import WebapiError, user
from plugins.webapi.send import CallInfo
from plugins.webapi.types import (
    Message,
    MessageDeleteRequest,
    MessageDeleteResult,
    MessageFlagsAddRequest,
    MessageFlagsAddResult,
    MessageFlagsRemoveRequest,
    MessageFlagsRemoveResult,
    MessageGetRequest,
    MessageGetResult,
    MessageMeta,
    MessageMoveRequest,
    MessageMoveResult,
    MessagePartGetRequest,
    MessageRawGetRequest,
    NameAddress,
)

#: Messages at least this big are parsed in a worker thread.
THREAD_PARSE_BYTES = 256 * 1024


def _not_found() -> WebapiError:
    return WebapiError("messageNotFound", "message not found")


async def _load(call: CallInfo, msg_id: int) -> tuple[StoredMessage, bytes]:
    """The stored message and its full bytes (prefix + file), or messageNotFound."""
    ctx = call.ctx
    account = call.login.account
    try:
        msg = await ctx.store.read(lambda c: get_message(c, account, msg_id))
    except (InvalidMessageID, MessageNotFound, MessageRemoved):
        raise _not_found() from None
    try:
        data = await ctx.store.files.read(msg.file_id)
    except (OSError, ValueError):
        raise _not_found() from None
    return msg, msg.msg_prefix + data


def _modify_error(exc: Exception) -> WebapiError:
    if isinstance(exc, MessageNotFound):
        return WebapiError("messageNotFound", f"getting message: {exc}")
    return user(f"getting message: {exc}")


def _names(items: list[dict[str, str]]) -> list[NameAddress]:
    return [NameAddress(Name=d["Name"], Address=d["Address"]) for d in items]


def _get_result(msg: StoredMessage, data: bytes) -> MessageGetResult:
    p = parse_part(data)
    h = p.headers
    text, html = text_html(p)
    message = Message(
        From=_names(name_addresses(h, "From")),
        To=_names(name_addresses(h, "To")),
        CC=_names(name_addresses(h, "Cc")),
        BCC=_names(name_addresses(h, "Bcc")),
        ReplyTo=_names(name_addresses(h, "Reply-To")),
        MessageID=h.get("Message-Id"),
        References=message_references(h),
        Date=parse_date(h.get("Date")),
        Subject=decode_rfc2047(h.get("Subject")),
        Text=text,
        HTML=html,
    )
    meta = MessageMeta(
        Size=msg.size,
        DSN=msg.is_dsn,
        Flags=msg.flag_list(),
        MailFrom=msg.mail_from,
        MailFromValidated=msg.mail_from_validated,
        RcptTo=msg.rcpt_to,
        MsgFrom=msg.msg_from,
        MsgFromValidated=msg.msg_from_validated,
        DKIMVerifiedDomains=list(msg.dkim_domains),
        RemoteIP=msg.remote_ip,
        MailboxName=msg.mailbox_name,
    )
    return MessageGetResult(Message=message, Structure=part_structure(p), Meta=meta)


async def message_get(call: CallInfo, req: MessageGetRequest) -> MessageGetResult:
    msg, data = await _load(call, req.MsgID)
    if len(data) >= THREAD_PARSE_BYTES:
        return await trio.to_thread.run_sync(_get_result, msg, data)
    return _get_result(msg, data)


async def message_raw_get(call: CallInfo, req: MessageRawGetRequest) -> tuple[bytes, str]:
    """(body, content type): the full stored message as ``text/plain``."""
    _, data = await _load(call, req.MsgID)
    return data, "text/plain"


async def message_part_get(call: CallInfo, req: MessagePartGetRequest) -> tuple[bytes, str]:
    """(body, content type): the transfer-decoded part, its type sniffed as Go's server does."""
    _, data = await _load(call, req.MsgID)
    path = list(req.PartPath)

    def get() -> bytes:
        return part_by_path(data, path)[1]

    try:
        if len(data) >= THREAD_PARSE_BYTES:
            body = await trio.to_thread.run_sync(get)
        else:
            body = get()
    except PartNotFoundError as exc:
        raise WebapiError("partNotFound", str(exc)) from None
    return body, detect_content_type(body[:512])


async def message_delete(call: CallInfo, req: MessageDeleteRequest) -> MessageDeleteResult:
    ctx = call.ctx
    account = call.login.account
    try:
        file_id = await ctx.store.write(lambda c: delete_message(c, account, req.MsgID))
    except (InvalidMessageID, MessageNotFound, MessageRemoved) as exc:
        raise _modify_error(exc) from None
    with trio.CancelScope(shield=True):
        if file_id:
            await ctx.store.remove_unreferenced([file_id])
    return MessageDeleteResult()


def _parse_flags(flags: list[str]) -> None:
    try:
        parse_flags(flags)
    except InvalidFlag as exc:
        raise user(f"parsing flags: {exc}") from None


async def _change_flags(call: CallInfo, msg_id: int, flags: list[str], add: bool) -> None:
    _parse_flags(flags)
    account = call.login.account

    def write(conn: Connection) -> Any:
        if add:
            return add_flags(conn, account, msg_id, flags)
        return remove_flags(conn, account, msg_id, flags)

    try:
        await call.ctx.store.write(write)
    except (InvalidMessageID, MessageNotFound, MessageRemoved) as exc:
        raise _modify_error(exc) from None


async def message_flags_add(call: CallInfo, req: MessageFlagsAddRequest) -> MessageFlagsAddResult:
    await _change_flags(call, req.MsgID, list(req.Flags), True)
    return MessageFlagsAddResult()


async def message_flags_remove(
    call: CallInfo, req: MessageFlagsRemoveRequest
) -> MessageFlagsRemoveResult:
    await _change_flags(call, req.MsgID, list(req.Flags), False)
    return MessageFlagsRemoveResult()


def _regexp(pattern: str) -> re.Pattern[str] | None:
    if not pattern:
        return None
    try:
        return re.compile(pattern)
    except re.error:
        return None


def junk_flags_for(conf: AutomaticJunkFlags | None, mailbox: str) -> tuple[list[str], list[str]]:
    """(add, remove) flags for a message moved to ``mailbox`` (mox's AutomaticJunkFlags).

    Matched in the order junk, neutral, not junk on the lowercased name; when
    exactly two of the three patterns are set, the third matches the rest.
    """
    if conf is None or not conf.Enabled:
        return [], []
    name = mailbox.lower()
    junk = _regexp(conf.JunkMailboxRegexp)
    neutral = _regexp(conf.NeutralMailboxRegexp)
    notjunk = _regexp(conf.NotJunkMailboxRegexp)
    if junk is not None and junk.search(name):
        return ["$junk"], ["$notjunk"]
    if neutral is not None and neutral.search(name):
        return [], []
    if notjunk is not None and notjunk.search(name):
        return ["$notjunk"], ["$junk"]
    if notjunk is None and junk is not None and neutral is not None:
        return ["$notjunk"], ["$junk"]
    if junk is None and neutral is not None and notjunk is not None:
        return ["$junk"], ["$notjunk"]
    return [], []


async def message_move(call: CallInfo, req: MessageMoveRequest) -> MessageMoveResult:
    account = call.login.account
    acc = call.ctx.config.account(account)
    add, remove = junk_flags_for(acc.AutomaticJunkFlags if acc else None, req.DestMailboxName)

    def write(conn: Connection) -> Any:
        get_message(conn, account, req.MsgID)
        return move_message(conn, account, req.MsgID, req.DestMailboxName, add=add, remove=remove)

    try:
        await call.ctx.store.write(write)
    except (InvalidMessageID, MessageNotFound, MessageRemoved) as exc:
        raise _modify_error(exc) from None
    except MailboxNotFound as exc:
        raise user(f"looking up mailbox name: {exc}") from None
    except AlreadyInMailbox as exc:
        raise user(f"moving message: {exc}") from None
    return MessageMoveResult()
