"""The one submission path: SMTP submission and webapi Send both end here.

A front end parses its input into a :class:`SubmitRequest` with a ``build``
step that produces the message, then maps :class:`SubmitError` kinds to its
wire form (SMTP codes, webapi error codes). In order, :func:`submit`:

1. authorizes the message From address for the account (mox's
   ``AllowMsgFrom``: an address of the account, its domain catchall, or an
   alias with ``AllowMsgFrom`` that the account is a member of);
2. refuses an empty recipient list;
3. checks the daily limits (``MaxOutgoingMessagesPerDay``,
   ``MaxFirstTimeRecipientsPerDay``);
4. builds the message (the front end's step: SMTP reads the header section,
   the webapi composes);
5. runs the ``moxtrio_submission`` hooks, which may refuse the message, set
   ``extra`` and add or remove header fields;
6. applies the header edits, signs with DKIM (edits are covered by the
   signature), stores the file durably and queues one entry per recipient,
   with a fromid when the login asks for one.

No step hands the message to another task: the only thread trips are the
store's and DKIM's own, as before.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import trio

from core.address import Address, parse_address
from core.config.validate import canonical_localpart
from core.dispatch import HookFailed
from core.dkim import DKIMError, MessageFile, sign_for_domain
from core.events import Submission
from core.plugin_api import PluginContext, Rejection
from core.queue.add import AddRecipient, AddRequest, FromIDNotUnique
from core.store.messages import count_first_time_recipients, count_outgoing
from core.store.models import QueueEntry
from core.store.sql import Connection

log = logging.getLogger("moxtrio.submit")


class Failure(Enum):
    """Why a submission was refused; each front end words these its own way."""

    FROM_DOMAIN_DISABLED = "from_domain_disabled"
    FROM_NOT_ALLOWED = "from_not_allowed"
    NO_RECIPIENTS = "no_recipients"
    MESSAGE_LIMIT = "message_limit"
    RECIPIENT_LIMIT = "recipient_limit"
    REJECTED = "rejected"  # a plugin's Rejection, in ``rejection``
    HOOK_FAILED = "hook_failed"
    DKIM_FAILED = "dkim_failed"
    BAD_FROMID = "bad_fromid"
    MULTIPLE_RCPTS_FROMID = "multiple_rcpts_fromid"
    QUEUE_UNAVAILABLE = "queue_unavailable"
    STORE_FAILED = "store_failed"
    QUEUE_FAILED = "queue_failed"


class SubmitError(Exception):
    """A refused submission: nothing was queued."""

    def __init__(self, failure: Failure, detail: str = "", *, limit: int = 0,
                 rejection: Rejection | None = None) -> None:
        super().__init__(detail or failure.value)
        self.failure = failure
        self.detail = detail
        #: The configured daily limit that was reached.
        self.limit = limit
        self.rejection = rejection


# -- sender authorization -------------------------------------------------------------


SenderVerdict = Literal["ok", "disabled", "denied"]


def authorize_sender(config: Any, account: str, addr: Address) -> SenderVerdict:
    """May ``account`` send with ``addr`` as From (and as MAIL FROM)? mox's AllowMsgFrom.

    An explicit destination decides by its account; an alias decides by its
    ``AllowMsgFrom`` and whether the account has a member address (an alias
    without ``AllowMsgFrom`` is never a sender, even under a catchall); an
    address that is neither falls to the domain's catchall (``@domain``),
    whose account may use any address of the domain. Catchall separators
    are stripped before the lookup, so ``mjl+tag@`` is ``mjl@``. A disabled
    domain answers ``disabled`` whatever the address.
    """
    dom = config.domain(addr.domain)
    if dom is None or getattr(dom, "ReportsOnly", False):
        return "denied"
    if dom.Disabled:
        return "disabled"
    match = config.lookup_destination(addr)
    if match is not None and not match.catchall:
        return "ok" if match.account == account else "denied"
    canon = canonical_localpart(addr.localpart, dom)
    for key, alias in dom.Aliases.items():
        if canonical_localpart(key.split("@", 1)[0], dom) != canon:
            continue
        if not alias.AllowMsgFrom:
            return "denied"
        for member in alias.Addresses:
            m = config.lookup_destination(member)
            if m is not None and not m.catchall and m.account == account:
                return "ok"
        return "denied"
    if match is not None and match.account == account:
        return "ok"
    return "denied"


# -- daily limits ---------------------------------------------------------------------


def sent_past_day(conn: Connection, account: str) -> int:
    """The account's messages of the past 24 hours, as the daily limits count them."""
    return count_outgoing(conn, account, datetime.now(UTC) - timedelta(hours=24))


async def check_daily_limits(ctx: PluginContext, account: str, recipients: list[str],
                             sent: int | None = None) -> None:
    """Raise MESSAGE_LIMIT / RECIPIENT_LIMIT when queueing would pass a daily limit.

    As mox: the messages of the past 24 hours plus these recipients may not
    exceed ``MaxOutgoingMessagesPerDay``; the first-time recipients (never
    sent to before the window) may not exceed ``MaxFirstTimeRecipientsPerDay``.
    The second count is skipped when the total is below its limit anyway.
    ``sent``: the first count, when the front end made it in a read of its
    own during this request (:func:`sent_past_day`); it then costs no read
    here unless the first-time recipients must be counted.
    """
    acc = ctx.config.account(account)
    if acc is None:
        return
    msg_max = acc.max_outgoing_messages_per_day
    rcpt_max = acc.max_first_time_recipients_per_day
    if sent is not None:
        if sent + len(recipients) > msg_max:
            raise SubmitError(Failure.MESSAGE_LIMIT, limit=msg_max)
        if sent + len(recipients) < rcpt_max:
            return
    now = datetime.now(UTC)

    def read(conn: Connection) -> Failure | None:
        n = count_outgoing(conn, account, now - timedelta(hours=24))
        if n + len(recipients) > msg_max:
            return Failure.MESSAGE_LIMIT
        if n + len(recipients) < rcpt_max:
            return None
        if count_first_time_recipients(conn, account, recipients, now) > rcpt_max:
            return Failure.RECIPIENT_LIMIT
        return None

    verdict: Failure | None = await ctx.store.read(read)
    if verdict is not None:
        raise SubmitError(verdict, limit=msg_max if verdict is Failure.MESSAGE_LIMIT else rcpt_max)


# -- fromid ---------------------------------------------------------------------------


def uses_fromid(config: Any, account: str, login: str) -> bool:
    """Whether the login address is one of the account's FromIDLoginAddresses.

    Compared as parsed addresses (localpart as written, domain in its
    normalised form), as mox compares them.
    """
    acc = config.account(account)
    if acc is None or not getattr(acc, "FromIDLoginAddresses", None):
        return False
    try:
        la = parse_address(login)
    except ValueError:
        return False
    for s in acc.FromIDLoginAddresses:
        try:
            fa = parse_address(s)
        except ValueError:
            continue
        if fa.localpart == la.localpart and fa.domain == la.domain:
            return True
    return False


@dataclass
class _FromID:
    use: bool = False
    separator: str = ""
    mail_from: Address | None = None
    chosen: str = ""


def _fromid_plan(config: Any, req: SubmitRequest) -> _FromID:
    """Generate a fromid per recipient, or use the one the SMTP client chose.

    With SMTP submission a client may bring its own fromid after the domain's
    first catchall separator in MAIL FROM (one recipient only); the webapi
    always generates one.
    """
    if req.mail_from is None or not uses_fromid(config, req.account, req.login):
        return _FromID()
    if not req.client_fromid:
        return _FromID(use=True)
    seps = config.catchall_separators(req.msg_from.domain)
    if not seps:
        return _FromID()
    sep = seps[0]
    lp = req.mail_from.localpart
    if sep not in lp:
        return _FromID(use=True, separator=sep)
    base, chosen = lp.split(sep, 1)
    if chosen and len(req.recipients) > 1:
        raise SubmitError(Failure.MULTIPLE_RCPTS_FROMID, "cannot send to multiple recipients with chosen fromid")
    return _FromID(separator=sep, mail_from=Address(base + sep + chosen, req.mail_from.domain), chosen=chosen)


# -- the message and the request -----------------------------------------------------------


@dataclass
class OutgoingMessage:
    """A built message: ``added`` header lines + the stored body (bytes or a file).

    ``added`` (e.g. a generated Message-Id and Date) is part of the signed
    message; ``received`` is the front end's Received header (first, not
    signed); ``trailer`` follows the DKIM signatures (SMTP's
    Authentication-Results). ``size`` is the size of ``data`` or the file.
    """

    data: bytes | None
    path: Path | None
    size: int
    received: bytes
    added: bytes = b""
    trailer: bytes = b""
    has8bit: bool = False
    smtputf8: bool = False
    message_id: str = ""
    subject: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    require_tls: bool | None = None
    next_attempt: datetime | None = None
    future_release_request: str = ""
    extra: dict[str, str] | None = None


@dataclass
class SubmitRequest:
    """What a front end knows before the message is built.

    ``msg_from`` is the message From address (authorized); ``mail_from`` the
    envelope sender (None: null sender); ``login`` the address the client
    authenticated with (for fromid). ``client_fromid``: MAIL FROM may carry
    a chosen fromid (SMTP). ``canonical_i``/``strict_dkim`` keep each front
    end's DKIM ``i=`` and failure handling.
    """

    account: str
    source: Literal["smtp", "webapi"]
    login: str
    msg_from: Address
    mail_from: Address | None
    recipients: list[Address]
    build: Callable[[], Awaitable[OutgoingMessage]]
    client_fromid: bool = False
    canonical_i: bool = False
    strict_dkim: bool = False
    #: Runs inside the queue-add transaction with the new entries.
    in_transaction: Callable[[Connection, list[QueueEntry]], None] | None = None
    #: :func:`sent_past_day`, when the front end counted it in a read of its own.
    sent_past_day: int | None = None


@dataclass
class SubmitResult:
    entries: list[QueueEntry]
    message: OutgoingMessage
    file_id: str
    dkim_headers: bytes
    #: Header lines added by hooks (signed; before the DKIM signatures).
    hook_headers: bytes = b""


# -- submission hooks: verdict, extra, header edits -----------------------------------------


async def run_submission_hooks(ctx: PluginContext, event: Submission) -> None:
    """Ask the ``moxtrio_submission`` plugins; raise REJECTED or HOOK_FAILED."""
    try:
        rejection = await ctx.hooks.first("moxtrio_submission", ctx=ctx, submission=event)
    except HookFailed as exc:
        log.error("submission hook failed: %s", exc)
        raise SubmitError(Failure.HOOK_FAILED, str(exc)) from None
    if isinstance(rejection, Rejection):
        raise SubmitError(Failure.REJECTED, rejection.text, rejection=rejection)


def _strip_fields(data: bytes, names: set[str]) -> bytes:
    """The message without the header fields named (case-insensitive), folded lines included."""
    end = data.find(b"\r\n\r\n")
    head, body = (data, b"") if end < 0 else (data[: end + 2], data[end + 2 :])
    out: list[bytes] = []
    skipping = False
    for line in head.splitlines(keepends=True):
        if line[:1] in (b" ", b"\t"):
            if not skipping:
                out.append(line)
            continue
        name = line.split(b":", 1)[0].strip().decode("latin-1").lower()
        skipping = name in names
        if not skipping:
            out.append(line)
    return b"".join(out) + body


async def _apply_removals(msg: OutgoingMessage, names: set[str]) -> None:
    """Remove header fields from the body and from ``added`` (rare: rewrites the file)."""
    msg.added = _strip_fields(msg.added + b"\r\n", names)[:-2] if msg.added else b""
    if msg.data is not None:
        msg.data = _strip_fields(msg.data, names)
        msg.size = len(msg.data)
        return
    assert msg.path is not None
    path = msg.path

    def rewrite() -> int:
        data = _strip_fields(path.read_bytes(), names)
        path.write_bytes(data)
        return len(data)

    msg.size = await trio.to_thread.run_sync(rewrite)


# -- submit ---------------------------------------------------------------------------------


async def authorize(ctx: PluginContext, req: SubmitRequest) -> None:
    """Steps 1-3: sender, recipients present, daily limits."""
    verdict = authorize_sender(ctx.config, req.account, req.msg_from)
    if verdict == "disabled":
        raise SubmitError(Failure.FROM_DOMAIN_DISABLED)
    if verdict == "denied":
        raise SubmitError(Failure.FROM_NOT_ALLOWED)
    if not req.recipients:
        raise SubmitError(Failure.NO_RECIPIENTS)
    await check_daily_limits(ctx, req.account, [str(r) for r in req.recipients], req.sent_past_day)


async def submit(ctx: PluginContext, req: SubmitRequest) -> SubmitResult:
    """Authorize, build, let plugins have their say, sign and queue; see the module doc."""
    await authorize(ctx, req)
    msg = await req.build()
    event = Submission(
        account=req.account,
        source=req.source,
        mail_from="" if req.mail_from is None else str(req.mail_from),
        recipients=[str(r) for r in req.recipients],
        headers=list(msg.headers),
        extra=dict(msg.extra or {}),
    )
    await run_submission_hooks(ctx, event)
    extra = dict(event.extra) if (msg.extra is not None or event.extra) else None
    if event.removed_headers:
        await _apply_removals(msg, {n.lower() for n in event.removed_headers})
    hook_headers = event.added_header_lines()
    fromid = _fromid_plan(ctx.config, req)

    signed = msg.added + hook_headers
    message: bytes | MessageFile
    if msg.data is not None:
        message = signed + msg.data
    else:
        assert msg.path is not None
        message = MessageFile(msg.path, prefix=signed)
    try:
        dkim_headers = await sign_for_domain(
            ctx, message, req.msg_from, canonical_i=req.canonical_i, strict=req.strict_dkim,
            also_sign=tuple(k for k, _ in event.added_headers),
        )
    except DKIMError as exc:
        raise SubmitError(Failure.DKIM_FAILED, str(exc)) from None

    prefix = msg.received + signed + dkim_headers + msg.trailer
    queue = ctx.queue if ctx.has_queue else None
    if queue is None:
        raise SubmitError(Failure.QUEUE_UNAVAILABLE, "queue not available")
    source: bytes | Path
    if msg.data is not None:
        source = msg.data
    else:
        assert msg.path is not None
        source = msg.path
    try:
        file_id = await ctx.store.files.store(source)
    except OSError as exc:
        raise SubmitError(Failure.STORE_FAILED, str(exc)) from None
    add = AddRequest(
        account=req.account,
        mail_from=req.mail_from,
        recipients=[
            AddRecipient(address=r, from_id=fromid.chosen, mail_from=fromid.mail_from) for r in req.recipients
        ],
        file_id=file_id,
        msg_prefix=prefix,
        size=len(prefix) + msg.size,
        file_size=msg.size,
        has8bit=msg.has8bit,
        smtputf8=msg.smtputf8,
        message_id=msg.message_id,
        subject=msg.subject,
        extra=extra,
        require_tls=msg.require_tls,
        next_attempt=msg.next_attempt,
        future_release_request=msg.future_release_request,
        use_fromid=fromid.use,
        fromid_separator=fromid.separator,
        in_transaction=req.in_transaction,
    )
    try:
        entries = await queue.add(add)
    except FromIDNotUnique as exc:
        raise SubmitError(Failure.BAD_FROMID, str(exc)) from None
    except trio.Cancelled:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure: nothing was queued
        log.exception("submission: queue add")
        raise SubmitError(Failure.QUEUE_FAILED, str(exc)) from None
    return SubmitResult(entries=entries, message=msg, file_id=file_id, dkim_headers=dkim_headers,
                        hook_headers=hook_headers)

