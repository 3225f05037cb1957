"""The Send method: validate, compose, queue, and optionally keep a Sent copy.

The checks run in mox's order so a client sees the same first error mox
would give. Composition is the core's (``core.message.compose``); sender
authorization, daily limits, submission hooks, DKIM and queueing are the
core's one submission path (``core.submit.submit``), shared with SMTP
submission. Queueing records the recipients toward the account's daily
limits (webapi sends count, unlike mox).

Header injection is impossible by construction: every value that ends up in
a header (display names, Subject, Message-ID, References, custom header
names and values, file types and ids) is refused with code ``user`` when it
holds a control character, addresses must parse, and file names are
written as (RFC 2231 encoded) MIME parameters. Extra ``Headers`` may not
repeat a header Send writes itself (From, Bcc, Content-Type...: code
``user``), and header lines over 998 octets are folded, or refused when they
have no whitespace to fold at.
"""

from __future__ import annotations

import base64
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

import trio

from core.address import Address as CoreAddress
from core.message.address import Address, AddressError, parse_address
from core.message.compose import (
    AttachmentError,
    ComposedMessage,
    ComposeFile,
    HeaderValueError,
    MalformedMessageIDError,
    MessageTooLargeError,
    bcc_header,
    check_header_value,
    compose_message,
    received_header,
)
from core.store.accounts import mailbox_by_special_use
from core.store.messages import account_size, insert_message
from core.store.models import MessageMeta
from core.store.sql import Connection
from core.submit import Failure, OutgoingMessage, SubmitError, SubmitRequest, submit
from moxtrio import PluginContext, QueueEntry
from plugins.webapi.auth import Login
from plugins.webapi.errors import WebapiError, server, user
from plugins.webapi.forms import Upload
from plugins.webapi.jsoncodec import format_time
from plugins.webapi.types import NameAddress, SendRequest, SendResult, Submission

log = logging.getLogger("moxtrio.webapi.send")

#: FutureRelease may be at most this far ahead (mox: 1440h).
MAX_FUTURE_RELEASE = timedelta(hours=1440)
#: Compose in a worker thread when the input is at least this large.
THREAD_COMPOSE_BYTES = 64 * 1024
#: Compose into a temp file instead of memory when the input is at least this large.
SPOOL_COMPOSE_BYTES = 1 << 20
SENT_FLAGS = ("\\seen", "$notjunk")


@dataclass
class CallInfo:
    """Per-request facts a method needs: who called, over which listener."""

    ctx: PluginContext
    login: Login
    hostname: str
    max_message_size: int
    tls: str | None = None
    uploads: list[Upload] = field(default_factory=list)
    #: The request's headers, by case-insensitive name (``get``), for extensions' own headers.
    headers: Any = None
    #: Runs inside the queue-add transaction with the new entries (idempotency record).
    queue_tx: Callable[[Connection, list[QueueEntry]], None] | None = None


@dataclass
class _Addr:
    given: str
    name: str
    addr: Address


def _parse(na: NameAddress) -> _Addr:
    try:
        check_header_value(na.Name, "display name")
    except HeaderValueError:
        raise user("checking header values: control characters not allowed") from None
    try:
        addr = parse_address(na.Address)
    except AddressError as exc:
        raise WebapiError("badAddress", f'parsing address "{na.Address}": {exc}') from None
    return _Addr(na.Address, na.Name, addr)


def _core_address(a: Address) -> CoreAddress:
    return CoreAddress(a.localpart, a.domain.unicode)


def _files(req: SendRequest, uploads: list[Upload]) -> tuple[list[ComposeFile], ...]:
    def json_files(files: list[object]) -> list[ComposeFile]:
        return [
            ComposeFile(
                name=f.Name, content_type=f.ContentType, content_id=f.ContentID, base64_data=f.Data  # type: ignore[attr-defined]
            )
            for f in files
        ]

    def uploaded(name: str) -> list[ComposeFile]:
        return [
            ComposeFile(
                name=u.filename,
                content_type=u.content_type or "",
                content_id=u.content_id,
                data=u.data,
                path=u.path,
            )
            for u in uploads
            if u.field == name
        ]

    return (
        json_files(list(req.AlternativeFiles)) + uploaded("alternativefile"),
        json_files(list(req.InlineFiles)) + uploaded("inlinefile"),
        json_files(list(req.AttachedFiles)) + uploaded("attachedfile"),
    )


def _compose(call: CallInfo, req: SendRequest, from_: _Addr, to: list[_Addr], cc: list[_Addr],
             bcc: list[_Addr], reply_to: list[_Addr], out_file: BinaryIO | None = None) -> ComposedMessage:
    alternative, inline, attached = _files(req, call.uploads)
    try:
        return compose_message(
            hostname=call.hostname,
            from_=(from_.name, from_.given),
            to=[(a.name, a.given) for a in to],
            cc=[(a.name, a.given) for a in cc],
            bcc=[(a.name, a.given) for a in bcc],
            reply_to=[(a.name, a.given) for a in reply_to],
            subject=req.Subject,
            text=req.Text,
            html=req.HTML,
            message_id=req.MessageID,
            references=list(req.References),
            date=req.Date,
            headers=[(k, v) for k, v in req.Headers],
            alternative_files=alternative,
            inline_files=inline,
            attached_files=attached,
            max_size=call.max_message_size,
            out_file=out_file,
        )
    except MalformedMessageIDError as exc:
        raise WebapiError("malformedMessageID", str(exc)) from None
    except MessageTooLargeError:
        raise WebapiError("messageTooLarge", "message too large") from None
    except HeaderValueError as exc:
        raise user(str(exc)) from None
    except AttachmentError as exc:
        raise user(str(exc)) from None
    except AddressError as exc:
        raise WebapiError("badAddress", str(exc)) from None


def _input_size(req: SendRequest, uploads: list[Upload]) -> int:
    n = len(req.Text) + len(req.HTML)
    for files in (req.AlternativeFiles, req.InlineFiles, req.AttachedFiles):
        n += sum(len(f.Data) for f in files)
    return n + sum(u.size for u in uploads)


def _received_id() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(16)).rstrip(b"=").decode("ascii")


def _quota(ctx: PluginContext, account: str) -> int:
    acc = ctx.config.account(account)
    q = acc.QuotaMessageSize if acc is not None else 0
    if q == 0:
        q = int(getattr(ctx.config.static, "QuotaMessageSize", 0) or 0)
    return q


class _OverQuota(Exception):
    pass


async def save_sent(
    ctx: PluginContext, account: str, file_id: str, prefix: bytes, size: int, message_id: str, subject: str
) -> None:
    """Store the Sent copy (``\\Seen``, ``$NotJunk``); silently skipped without a Sent mailbox.

    The copy shares the queued message's file (already durable) and keeps its
    own header lines (Bcc, DKIM) in ``msg_prefix``: no second file to write and
    fsync on the Send path. ``size`` includes the prefix.
    """
    mailbox = await ctx.store.read(lambda c: mailbox_by_special_use(c, account, "\\Sent"))
    if mailbox is None:
        return
    quota = _quota(ctx, account)

    def write(conn: Connection) -> int:
        if quota > 0 and account_size(conn, account) + size > quota:
            raise _OverQuota()
        return insert_message(
            conn, account, mailbox.id, file_id, size,
            meta=MessageMeta(message_id=message_id, subject=subject, msg_prefix=prefix), flags=SENT_FLAGS,
        )

    try:
        await ctx.store.write(write)
    except _OverQuota:
        raise WebapiError(
            "sentOverQuota", "message was sent, but not stored in sent mailbox: account quota exceeded"
        ) from None
    except Exception as exc:
        log.exception("storing sent copy")
        raise server(f"message was sent, but not stored in sent mailbox: {exc}") from None


async def send(call: CallInfo, req: SendRequest) -> SendResult:
    """mox's Send, in mox's order of checks; the core's ``submit`` authorizes, signs and queues."""
    ctx = call.ctx
    account = call.login.account
    acc = ctx.config.account(account)
    if acc is None:
        raise server("account not found")

    if req.Text == "" and req.HTML == "":
        raise WebapiError("missingBody", "at least text or html body required")
    froms = list(req.From)
    if not froms:
        froms = [NameAddress(Name=acc.FullName, Address=call.login.address)]
    elif len(froms) > 1:
        raise WebapiError("multipleFrom", "multiple from-addresses not allowed")
    from_ = _parse(froms[0])
    to = [_parse(a) for a in req.To]
    cc = [_parse(a) for a in req.CC]
    bcc = [_parse(a) for a in req.BCC]
    rcpts = to + cc + bcc

    spool: list[Path] = []

    async def build() -> OutgoingMessage:
        reply_to = [_parse(a) for a in req.ReplyTo]
        if _input_size(req, call.uploads) >= SPOOL_COMPOSE_BYTES:
            # Large: composed into a temp file, never whole in memory; the
            # store takes the file over as it is.
            path = ctx.store.files.tmp_dir / f"webapi-{secrets.token_hex(8)}"
            spool.append(path)
            composed = await trio.to_thread.run_sync(_compose_to_file, call, req, from_, to, cc, bcc, reply_to, path)
        elif _input_size(req, call.uploads) >= THREAD_COMPOSE_BYTES:
            composed = await trio.to_thread.run_sync(
                lambda: _compose(call, req, from_, to, cc, bcc, reply_to)
            )
        else:
            composed = _compose(call, req, from_, to, cc, bcc, reply_to)
        return _outgoing(call, req, from_, rcpts, composed, spool[0] if spool else None)

    sub = SubmitRequest(
        account=account, source="webapi", login=call.login.address, msg_from=_core_address(from_.addr),
        mail_from=_core_address(from_.addr), recipients=[_core_address(r.addr) for r in rcpts],
        build=build, strict_dkim=True, in_transaction=call.queue_tx,
        sent_past_day=call.login.sent_past_day,
    )
    try:
        done = await submit(ctx, sub)
    except SubmitError as exc:
        raise _webapi_error(exc) from None
    finally:
        if spool:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(lambda: spool[0].unlink(missing_ok=True))

    composed_id = done.message.message_id
    result = SendResult(
        MessageID=composed_id,
        Submissions=[
            Submission(Address=r.given, QueueMsgID=e.id, FromID=e.from_id)
            for r, e in zip(rcpts, done.entries, strict=True)
        ],
    )
    if req.SaveSent:
        # The message is queued: the Sent copy must not be cut short by a
        # client that goes away now.
        with trio.CancelScope(shield=True):
            # mox's Sent copy: Bcc, then the signed prefix (no Received), then the message.
            bcc_field = bcc_header([(a.name, a.given) for a in bcc], done.message.smtputf8)
            sent_prefix = bcc_field + done.hook_headers + done.dkim_headers
            await save_sent(
                ctx, account, done.file_id, sent_prefix, len(sent_prefix) + done.message.size,
                composed_id, req.Subject,
            )
    return result


def _compose_to_file(call: CallInfo, req: SendRequest, from_: _Addr, to: list[_Addr], cc: list[_Addr],
                     bcc: list[_Addr], reply_to: list[_Addr], path: Path) -> ComposedMessage:
    with open(path, "wb") as f:
        return _compose(call, req, from_, to, cc, bcc, reply_to, f)


def _outgoing(call: CallInfo, req: SendRequest, from_: _Addr, rcpts: list[_Addr],
              composed: ComposedMessage, spool: Path | None) -> OutgoingMessage:
    """The composed message as the core's submission takes it, after Send's own late checks."""
    # A From domain disabled meanwhile is a user error, as in mox.
    dom = call.ctx.config.domain(from_.addr.domain.unicode)
    if dom is not None and dom.Disabled:
        raise user("domain of from-address is temporarily disabled")
    now = datetime.now().astimezone()
    next_attempt: datetime | None = None
    future_request = ""
    if req.FutureRelease is not None:
        if req.FutureRelease - now > MAX_FUTURE_RELEASE:
            raise user(
                "scheduling delivery: date/time can not be further than 1440h0m0s in the future"
            )
        next_attempt = req.FutureRelease
        future_request = "until;" + format_time(req.FutureRelease.replace(microsecond=0))
    rcpt = rcpts[0].addr.pack(composed.smtputf8) if len(rcpts) == 1 else ""
    return OutgoingMessage(
        data=composed.data if spool is None else None,
        path=spool,
        size=composed.size,
        received=received_header(
            hostname=call.hostname, received_id=_received_id(), rcpt=rcpt, date=now, tls=call.tls
        ),
        has8bit=composed.has_8bit,
        smtputf8=composed.smtputf8,
        message_id=composed.message_id,
        subject=req.Subject,
        headers=[(k, v) for k, v in req.Headers],
        require_tls=req.RequireTLS,
        next_attempt=next_attempt,
        future_release_request=future_request,
        extra=None if req.Extra is None else dict(req.Extra),
    )


def _webapi_error(exc: SubmitError) -> WebapiError:
    """mox's webapi codes for a refused submission."""
    f = exc.failure
    if f is Failure.FROM_DOMAIN_DISABLED:
        return WebapiError("domainDisabled", "domain of from-address is temporarily disabled")
    if f is Failure.FROM_NOT_ALLOWED:
        return WebapiError("badFrom", "from-address not configured for account")
    if f is Failure.NO_RECIPIENTS:
        return WebapiError("noRecipients", "no recipients")
    if f is Failure.MESSAGE_LIMIT:
        return WebapiError("messageLimitReached", "outgoing message rate limit reached")
    if f is Failure.RECIPIENT_LIMIT:
        return WebapiError("recipientLimitReached", "outgoing new recipient rate limit reached")
    if f is Failure.REJECTED and exc.rejection is not None:
        return WebapiError("user" if exc.rejection.permanent else "server", exc.rejection.text)
    if f is Failure.HOOK_FAILED:
        return server("checking submission: temporary error in a plugin")
    if f is Failure.DKIM_FAILED:
        return server(f"sign dkim: {exc.detail}")
    if f is Failure.QUEUE_UNAVAILABLE:
        return server("adding messages to the delivery queue: queue not available")
    if f is Failure.STORE_FAILED:
        return server(f"storing message: {exc.detail}")
    return server(f"adding messages to the delivery queue: {exc.detail}")
