"""The Send method: validate, compose, queue, and optionally keep a Sent copy (spec 01 §5.1).

The checks run in mox's order so a client sees the same first error mox
would give. Composition is the core's (``core.message.compose``), queueing
goes through the one queue-add path (``ctx.queue.add``), which
also records the recipients toward the account's daily limits (spec README
difference 7: webapi sends count, unlike mox).

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
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

import trio

from core.address import Address as CoreAddress
from core.config.validate import canonical_localpart
from core.dispatch import HookFailed
from core.dkim import DKIMError, MessageFile, sign_for_domain
from core.events import Submission as SubmissionEvent
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
from core.plugin_api import PluginContext, Rejection
from core.queue.add import AddRecipient, AddRequest
from core.store.accounts import mailbox_by_special_use
from core.store.messages import (
    account_size,
    count_first_time_recipients,
    count_outgoing,
    insert_message,
)
from core.store.models import MessageMeta, QueueEntry, utcnow
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
    #: Runs inside the queue-add transaction with the new entries (idempotency record).
    queue_tx: Callable[[sqlite3.Connection, list[QueueEntry]], None] | None = None


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


def check_from_allowed(ctx: PluginContext, account: str, a: Address) -> None:
    """The From address must belong to the account (destination or alias it may send as)."""
    config = ctx.config
    dom = config.domain(a.domain.unicode)
    if dom is None:
        raise WebapiError("badFrom", "from-address not configured for account")
    if dom.Disabled:
        raise WebapiError("domainDisabled", "domain of from-address is temporarily disabled")
    match = config.lookup_destination(_core_address(a))
    if match is not None and not match.catchall:
        if match.account == account:
            return
        raise WebapiError("badFrom", "from-address not configured for account")
    canon = canonical_localpart(a.localpart, dom)
    for key, alias in dom.Aliases.items():
        if canonical_localpart(key.split("@", 1)[0], dom) != canon:
            continue
        if not alias.AllowMsgFrom:
            break
        for member in alias.Addresses:
            m = config.lookup_destination(member)
            if m is not None and m.account == account:
                return
        break
    if match is not None and match.account == account:
        return
    raise WebapiError("badFrom", "from-address not configured for account")


def _limits(ctx: PluginContext, account: str) -> tuple[int, int]:
    acc = ctx.config.account(account)
    if acc is None:
        raise server("account not found")
    return acc.max_outgoing_messages_per_day, acc.max_first_time_recipients_per_day


async def check_daily_limits(ctx: PluginContext, account: str, rcpts: list[str]) -> None:
    """MaxOutgoingMessagesPerDay / MaxFirstTimeRecipientsPerDay (spec 08 §5)."""
    msg_max, rcpt_max = _limits(ctx, account)
    now = utcnow()

    def read(conn: sqlite3.Connection) -> str | None:
        n = count_outgoing(conn, account, now - timedelta(hours=24))
        if n + len(rcpts) > msg_max:
            return "messageLimitReached"
        if n + len(rcpts) < rcpt_max:
            return None
        if count_first_time_recipients(conn, account, rcpts, now) > rcpt_max:
            return "recipientLimitReached"
        return None

    verdict = await ctx.store.read(read)
    if verdict == "messageLimitReached":
        raise WebapiError(verdict, "outgoing message rate limit reached")
    if verdict == "recipientLimitReached":
        raise WebapiError(verdict, "outgoing new recipient rate limit reached")


def _uses_fromid(ctx: PluginContext, account: str, login: str) -> bool:
    acc = ctx.config.account(account)
    if acc is None or not acc.FromIDLoginAddresses:
        return False
    try:
        la = parse_address(login)
    except AddressError:
        return False
    for s in acc.FromIDLoginAddresses:
        try:
            fa = parse_address(s)
        except AddressError:
            continue
        if fa.localpart == la.localpart and fa.domain.ascii == la.domain.ascii:
            return True
    return False


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


async def _submission_hook(
    ctx: PluginContext, account: str, from_: _Addr, rcpts: list[_Addr], req: SendRequest
) -> dict[str, str] | None:
    event = SubmissionEvent(
        account=account,
        source="webapi",
        mail_from=str(from_.addr),
        recipients=[str(r.addr) for r in rcpts],
        headers=[(k, v) for k, v in req.Headers],
        extra=dict(req.Extra or {}),
    )
    try:
        rejection = await ctx.hooks.first("moxtrio_submission", ctx=ctx, submission=event)
    except HookFailed as exc:
        log.error("submission hook failed: %s", exc)
        raise server("checking submission: temporary error in a plugin") from None
    if isinstance(rejection, Rejection):
        raise WebapiError("user" if rejection.permanent else "server", rejection.text)
    if req.Extra is None and not event.extra:
        return None
    return dict(event.extra)


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

    def write(conn: sqlite3.Connection) -> int:
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
    """Spec 01 §5.1, in mox's order of checks."""
    ctx = call.ctx
    config = ctx.config
    account = call.login.account
    acc = config.account(account)
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
    check_from_allowed(ctx, account, from_.addr)
    rcpts = to + cc + bcc
    if not rcpts:
        raise WebapiError("noRecipients", "no recipients")
    await check_daily_limits(ctx, account, [str(_core_address(r.addr)) for r in rcpts])
    reply_to = [_parse(a) for a in req.ReplyTo]

    files = ctx.store.files
    spool: Path | None = None
    try:
        if _input_size(req, call.uploads) >= SPOOL_COMPOSE_BYTES:
            # Large: composed into a temp file, never whole in memory; the
            # store takes the file over as it is.
            spool = files.tmp_dir / f"webapi-{secrets.token_hex(8)}"
            composed = await trio.to_thread.run_sync(_compose_to_file, call, req, from_, to, cc, bcc, reply_to, spool)
        elif _input_size(req, call.uploads) >= THREAD_COMPOSE_BYTES:
            composed = await trio.to_thread.run_sync(
                lambda: _compose(call, req, from_, to, cc, bcc, reply_to)
            )
        else:
            composed = _compose(call, req, from_, to, cc, bcc, reply_to)
        return await _submit(call, req, from_, rcpts, bcc, composed, spool)
    finally:
        if spool is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(lambda: spool.unlink(missing_ok=True))


def _compose_to_file(call: CallInfo, req: SendRequest, from_: _Addr, to: list[_Addr], cc: list[_Addr],
                     bcc: list[_Addr], reply_to: list[_Addr], path: Path) -> ComposedMessage:
    with open(path, "wb") as f:
        return _compose(call, req, from_, to, cc, bcc, reply_to, f)


async def _submit(call: CallInfo, req: SendRequest, from_: _Addr, rcpts: list[_Addr],
                  bcc: list[_Addr], composed: ComposedMessage, spool: Path | None) -> SendResult:
    """Sign, queue and keep the Sent copy of a composed message (in ``spool`` when given)."""
    ctx = call.ctx
    config = ctx.config
    account = call.login.account
    message: bytes | MessageFile = composed.data if spool is None else MessageFile(spool)

    # A From domain disabled meanwhile is a user error, as in mox.
    dom = config.domain(from_.addr.domain.unicode)
    if dom is not None and dom.Disabled:
        raise user("domain of from-address is temporarily disabled")
    # --- DKIM (spec 01 §5.1.4): the signatures form the common prefix after
    # Received; i= is the From localpart as is; a failure is a server error.
    try:
        dkim_headers = await sign_for_domain(ctx, message, _core_address(from_.addr), strict=True)
    except DKIMError as exc:
        raise server(f"sign dkim: {exc}") from None
    # --- end DKIM

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

    extra = await _submission_hook(ctx, account, from_, rcpts, req)

    rcpt = rcpts[0].addr.pack(composed.smtputf8) if len(rcpts) == 1 else ""
    prefix = received_header(
        hostname=call.hostname, received_id=_received_id(), rcpt=rcpt, date=now, tls=call.tls
    ) + dkim_headers
    queue = ctx.queue if ctx.has_queue else None
    if queue is None:
        raise server("adding messages to the delivery queue: queue not available")
    try:
        file_id = await ctx.store.files.store(composed.data if spool is None else spool)
    except OSError as exc:
        raise server(f"storing message: {exc}") from None
    add = AddRequest(
        account=account,
        mail_from=_core_address(from_.addr),
        recipients=[AddRecipient(_core_address(r.addr)) for r in rcpts],
        file_id=file_id,
        msg_prefix=prefix,
        size=len(prefix) + composed.size,
        has8bit=composed.has_8bit,
        smtputf8=composed.smtputf8,
        message_id=composed.message_id,
        subject=req.Subject,
        extra=extra,
        require_tls=req.RequireTLS,
        next_attempt=next_attempt,
        future_release_request=future_request,
        use_fromid=_uses_fromid(ctx, account, call.login.address),
        in_transaction=call.queue_tx,
    )
    try:
        entries = await queue.add(add)
    except trio.Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure: nothing was queued
        log.exception("webapi send: queue add")
        raise server(f"adding messages to the delivery queue: {exc}") from None

    result = SendResult(
        MessageID=composed.message_id,
        Submissions=[
            Submission(Address=r.given, QueueMsgID=e.id, FromID=e.from_id)
            for r, e in zip(rcpts, entries, strict=True)
        ],
    )
    if req.SaveSent:
        # The message is queued: the Sent copy must not be cut short by a
        # client that goes away now.
        with trio.CancelScope(shield=True):
            # Spec 01 §5.1.5: Bcc, then the DKIM prefix (no Received), then the message.
            bcc_field = bcc_header([(a.name, a.given) for a in bcc], composed.smtputf8)
            sent_prefix = bcc_field + dkim_headers
            await save_sent(
                ctx, account, file_id, sent_prefix, len(sent_prefix) + composed.size,
                composed.message_id, req.Subject,
            )
    return result
