"""The core's SessionHandler: what SMTP sessions mean for accounts, store and queue.

The protocol layer (``core.smtp.session``) asks this handler every question
that needs the config, the store or the queue. The delivery listener stores
mail in local accounts (``core.incoming``); submission listeners check the
sender against the authenticated account and queue the message through the
one queue-add path (``QueueService.add``), after plugins had their say
(``moxtrio_smtp_*`` verdicts, ``moxtrio_submission`` for Extra).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path as FsPath
from typing import Any

import trio

from core.address import Address, parse_address
from core.dispatch import HookFailed
from core.incoming import IncomingMessage, IncomingRecipient, store_incoming
from core.message.compose import format_date, new_message_id
from core.message.headers import is_dsn, parse_addresses
from core.message.mime import Headers, parse_header_section
from core.message.structure import parse_part
from core.plugin_api import PluginContext, Rejection
from core.services import OwnDomainAnswers
from core.smtp.handler import Envelope, ListenerKind, LoginInfo, ReceivedMessage, SessionInfo
from core.smtp.observe import observe_data
from core.smtp.parser import Path
from core.smtp.reply import Reply
from core.store import accounts as store_accounts
from core.submit import (
    Failure,
    OutgoingMessage,
    SubmitError,
    SubmitRequest,
    authorize_sender,
    submit,
)

log = logging.getLogger("moxtrio.smtp.backend")

HEADER_READ_LIMIT = 1024 * 1024
#: A message in memory up to this size has its MIME parts parsed (the
#: pedantic SMTPUTF8 check) on the trio thread; a larger one in a worker.
INLINE_PARSE_MAX = 64 * 1024


def _reply(rej: Rejection) -> Reply:
    return Reply(rej.code, rej.enhanced, rej.text)


def _read_header_section(path: str, check_smtputf8: bool = False) -> tuple[bytes, bool]:
    """The start of a spooled message (bounded read), and, when asked, whether the
    header section of the message or of any MIME part has non-ASCII bytes."""
    with open(path, "rb") as f:
        data = f.read(HEADER_READ_LIMIT)
        if not check_smtputf8:
            return data, False
        whole = data + f.read()
    return data, _any_header_not_ascii(whole)


def _header_section_of(whole: bytes, check_smtputf8: bool) -> tuple[bytes, bool]:
    """:func:`_read_header_section` for a message held in memory."""
    return whole[:HEADER_READ_LIMIT], check_smtputf8 and _any_header_not_ascii(whole)


def _any_header_not_ascii(whole: bytes) -> bool:
    stack = [parse_part(whole)]
    while stack:
        part = stack.pop()
        if not whole[part.header_offset : part.body_offset].isascii():
            return True
        stack.extend(part.parts)
    return False


class CoreSessionHandler:
    """One per SMTP connection; keeps the current transaction's decisions."""

    def __init__(self, ctx: PluginContext, listener_name: str, kind: ListenerKind) -> None:
        self.ctx = ctx
        self.listener_name = listener_name
        self.listener_kind: ListenerKind = kind
        self._matches: dict[str, Any] = {}

    @property
    def config(self) -> Any:
        return self.ctx.config

    @property
    def hostname(self) -> str:
        listener = self.config.static.Listeners[self.listener_name]
        return getattr(listener, "Hostname", "") or self.config.static.Hostname

    # -- plugin verdicts ---------------------------------------------------------

    async def _verdict(self, hook: str, address: str) -> Reply | None:
        try:
            rej = await self.ctx.hooks.first(
                hook, ctx=self.ctx, listener_kind=self.listener_kind, address=address
            )
        except HookFailed as exc:
            log.error("%s", exc)
            return Reply(451, "4.3.0", "error processing")
        if rej is None:
            return None
        if rej.stall is not None:
            await rej.stall()
        return _reply(rej)

    # -- AUTH ----------------------------------------------------------------------

    async def lookup_login(self, username: str) -> LoginInfo | None:
        account = self.config.account_for_login(username)
        if account is None:
            return None
        found = await self.ctx.store.read(lambda conn: store_accounts.get_login_secrets(conn, account))
        acc = self.config.dynamic.Accounts.get(account)
        disabled = getattr(acc, "LoginDisabled", "") if acc is not None else ""
        if found is None:
            return LoginInfo(account=account, scram=None, login_disabled=disabled)
        return LoginInfo(
            account=account,
            scram=found.scram_sha256,
            login_disabled=disabled,
            scram_sha1=found.scram_sha1,
            cram_md5=found.cram_md5,
        )

    # -- MAIL FROM -------------------------------------------------------------------

    async def check_mail_from(self, info: SessionInfo, envelope: Envelope) -> Reply | None:
        self._matches = {}
        mail_from = envelope.mail_from
        if info.submission and not mail_from.is_null:
            if mail_from.ip is not None or not mail_from.domain:
                return Reply(550, "5.7.1", "must match authenticated user")
            reply = self._check_sender_allowed(
                info, mail_from.to_address(), "domain of smtp mail from is temporarily disabled",
                "must match authenticated user",
            )
            if reply is not None:
                return reply
        if not info.submission and not mail_from.is_null:
            from core.mailauth.delivery import mail_from_domain_check

            rej = await mail_from_domain_check(self.ctx, mail_from.domain if mail_from.ip is None else "")
            if rej is not None:
                return _reply(rej)
        return await self._verdict("moxtrio_smtp_mail_from", str(mail_from))

    def _check_sender_allowed(
        self, info: SessionInfo, addr: Address, disabled_text: str, denied_text: str
    ) -> Reply | None:
        verdict = authorize_sender(self.config, info.account, addr)
        if verdict == "disabled":
            return Reply(451, "4.3.0", disabled_text)
        if verdict == "denied":
            return Reply(550, "5.7.1", denied_text)
        return None

    # -- RCPT TO -----------------------------------------------------------------------

    async def check_rcpt(self, info: SessionInfo, envelope: Envelope, address: Path) -> Reply | None:
        if info.submission:
            reply = await self._check_submission_rcpt(address)
        else:
            reply = await self._check_delivery_rcpt(address)
        if reply is not None:
            return reply
        return await self._verdict("moxtrio_smtp_rcpt_to", str(address))

    async def _fallback(self, address: Path) -> str | Reply | None:
        """A plugin's destination for an address no account has (None: refuse it)."""
        try:
            fallback: str | None = await self.ctx.hooks.first(
                "moxtrio_smtp_fallback_recipient",
                ctx=self.ctx, listener_kind=self.listener_kind, address=str(address),
            )
        except HookFailed as exc:
            log.error("%s", exc)
            return Reply(451, "4.3.0", "error processing")
        return fallback

    async def _check_submission_rcpt(self, address: Path) -> Reply | None:
        if not address.domain:
            return None  # IP literals are accepted on submission.
        domain = self.config.domain(address.domain)
        if domain is None:
            return None
        if domain.Disabled:
            return Reply(450, "4.2.1", "recipient domain temporarily disabled")
        if self.config.lookup_destination(address.to_address()) is None:
            fallback = await self._fallback(address)
            if isinstance(fallback, Reply):
                return fallback
            if fallback is not None:
                return None  # the queue delivers it; delivery applies the fallback
            return Reply(550, "5.1.1", "no such user")
        return None

    async def _check_delivery_rcpt(self, address: Path) -> Reply | None:
        match = None
        if address.domain:
            domain = self.config.domain(address.domain)
            if domain is not None and domain.Disabled:
                return Reply(450, "4.2.1", "recipient domain temporarily disabled")
            match = self.config.lookup_destination(address.to_address())
            if match is None and domain is not None and address.localpart.lower() == "postmaster":
                match = self._postmaster_match()
        elif address.localpart.lower() == "postmaster":
            match = self._postmaster_match()
        if match is None:
            fallback = await self._fallback(address)
            if isinstance(fallback, Reply):
                return fallback
            if fallback is not None:
                match = self._fallback_match(fallback)
        if match is None:
            if address.domain and self.config.domain(address.domain) is None:
                return Reply(550, "5.1.2", "not accepting email for domain")
            return Reply(550, "5.1.1", "no such user")
        self._matches[str(address)] = match
        return None

    def _postmaster_match(self) -> Any:
        pm = self.config.static.Postmaster
        acc = self.config.dynamic.Accounts.get(pm.Account)
        if acc is None:
            return None
        for dest in acc.Destinations:
            m = self.config.lookup_destination(dest) if "@" in dest and not dest.startswith("@") else None
            if m is not None:
                return _with_mailbox(m, pm.Mailbox or "Inbox")
        return None

    def _fallback_match(self, fallback: str) -> Any:
        """The destination of a plugin's fallback address (``postmaster``: the postmaster's)."""
        if fallback.lower() == "postmaster":
            return self._postmaster_match()
        return self.config.lookup_destination(fallback)

    # -- DATA ------------------------------------------------------------------------

    async def deliver(self, info: SessionInfo, envelope: Envelope, message: ReceivedMessage) -> Reply:
        # mox in pedantic mode: raw UTF-8 in any part's header needs SMTPUTF8 on
        # MAIL (8-bit bodies alone need only 8BITMIME). Checked in the same
        # worker-thread trip that reads the header section.
        check = bool(self.config.static.Pedantic) and not envelope.smtputf8 and message.has_8bit
        if message.data is not None and (not check or len(message.data) <= INLINE_PARSE_MAX):
            head, needs_smtputf8 = _header_section_of(message.data, check)
        elif message.data is not None:
            head, needs_smtputf8 = await trio.to_thread.run_sync(_header_section_of, message.data, check)
        else:
            head, needs_smtputf8 = await trio.to_thread.run_sync(_read_header_section, message.path, check)
        try:
            headers, _ = parse_header_section(head)
        except Exception:  # noqa: BLE001 - malformed header section
            return Reply(554, "5.6.0", "malformed message: cannot parse header")
        if needs_smtputf8:
            return Reply(550, "5.6.0", "smtputf8 extension is required but was not added to the MAIL command")
        if info.submission:
            reply = await self._submit(info, envelope, message, head, headers)
        else:
            reply = await self._deliver_local(info, envelope, message, head, headers)
        observe_data(info, envelope, reply)
        return reply

    async def _recipient_verdicts(self, envelope: Envelope) -> list[tuple[Path, Reply | None]]:
        out = []
        for rcpt in envelope.recipients:
            out.append((rcpt, await self._verdict("moxtrio_smtp_data_recipient", str(rcpt))))
        return out

    def _received(self, info: SessionInfo, rcpt: str) -> bytes:
        with_ = "ESMTPS" if info.tls else "ESMTP"
        if info.account:
            with_ += "A"
        tls = f" ({info.tls_version} {info.tls_cipher})" if info.tls and info.tls_version else ""
        helo = info.ehlo_name or f"[{info.remote_ip}]"
        for_part = f"\r\n\tfor <{rcpt}>" if rcpt else ""
        return (
            f"Received: from {helo} ([{info.remote_ip}])\r\n\tby {self.hostname} ([{info.local_ip}])"
            f" with {with_}{tls} id {info.conn_id}{for_part};\r\n\t{format_date(datetime.now(UTC))}\r\n"
        ).encode()

    async def _deliver_local(
        self, info: SessionInfo, envelope: Envelope, message: ReceivedMessage, head: bytes, headers: Headers
    ) -> Reply:
        verdicts = await self._recipient_verdicts(envelope)
        failed = [(r, v) for r, v in verdicts if v is not None]
        accepted = [r for r, v in verdicts if v is None]
        if not accepted:
            codes = {v.code for _, v in failed if v is not None}
            first = failed[0][1]
            assert first is not None
            if len(codes) == 1:
                return first
            lines = "\n".join(f"{r}: {v.code} {v.text}" for r, v in failed if v is not None)
            code = 554 if all(c >= 500 for c in codes) else 451
            return Reply(code, f"{code // 100}.0.0", "failures for recipients:\n" + lines)
        for rcpt, verdict in failed:
            # mox would send a DSN for these; in its local mode it only logs them, and so do we.
            log.info("recipient failed at data: %s: %s", rcpt, verdict)
        mf = envelope.mail_from
        from_list = parse_addresses(headers.get("From"))
        # --- incoming authentication (SPF, DKIM, DMARC) and mox's delivery headers
        from core.mailauth import delivery as auth_delivery

        authenticated = await auth_delivery.authenticate_incoming(
            self.ctx, inputs=_auth_inputs(info, envelope, message, from_list, self.hostname,
                                          _localhost_domain(self.ctx), head),
            mail_from="" if mf.is_null else str(mf), recipients=[str(r) for r in accepted],
        )
        if not isinstance(authenticated, tuple):
            return _reply(authenticated)
        auth, extra_headers = authenticated
        size = message.size
        # The whole file, when the header read got all of it (until the file is rewritten).
        data = head if len(head) == message.size else None
        end = head.find(b"\r\n\r\n")
        if b"authentication-results" in (head if end < 0 else head[:end]).lower():
            stripped = await auth_delivery.strip_forged_auth_results(message.path, self.hostname)
            if stripped is not None:
                size, data = stripped, None

        auth_headers = auth.auth_results() + auth.received_spf()

        def prefix_for(rcpt: Path) -> bytes:
            received = auth_delivery.received_header(
                helo=info.ehlo_name, remote_ip=info.remote_ip, iprev_name=auth.iprev_name,
                hostname=self.hostname, local_ip=info.local_ip, ehlo=info.is_ehlo,
                smtputf8=envelope.smtputf8, tls=info.tls, tls_version=info.tls_version,
                tls_cipher=info.tls_cipher, conn_id=info.conn_id, rcpt_to=str(rcpt),
                requiretls=envelope.requiretls,
            )
            return auth_delivery.delivery_prefix(
                auth_headers, extra_headers, deliver_to=str(rcpt), mail_from="" if mf.is_null else str(mf),
                received=received,
            )
        # --- end incoming authentication
        prefix = prefix_for(accepted[0])
        file_id = await self.ctx.store.files.store(FsPath(message.path))
        incoming = IncomingMessage(
            file_id=file_id,
            size=len(prefix) + size,
            msg_prefix=prefix,
            mail_from="" if mf.is_null else str(mf),
            mail_from_localpart=mf.localpart,
            mail_from_domain=mf.domain_text,
            remote_ip=info.remote_ip,
            remote_port=info.remote_port,
            message_id=headers.get("Message-Id"),
            subject=headers.get("Subject"),
            msg_from=from_list[0][1] if len(from_list) == 1 else "",
            is_dsn=is_dsn(head),
            mail_from_validated=auth.mail_from_validated,
            msg_from_validated=auth.msg_from_validated,
            dkim_domains=auth.dkim_domains,
            data=data,
        )
        recipients = [
            IncomingRecipient(localpart=r.localpart, domain=r.domain_text, match=self._matches[str(r)],
                              msg_prefix=prefix_for(r) if i else prefix)
            for i, r in enumerate(accepted)
        ]
        try:
            await store_incoming(self.ctx, incoming, recipients)
        except BaseException:
            with trio.CancelScope(shield=True):
                await self.ctx.store.remove_unreferenced([file_id])
            raise
        return Reply(250, "2.2.0", "it is done")

    async def _submit(
        self, info: SessionInfo, envelope: Envelope, message: ReceivedMessage, head: bytes, headers: Headers
    ) -> Reply:
        """Parse the From header and hand the transaction to the core's one submission path."""
        froms = headers.get_all("From")
        addrs = parse_addresses(froms[0]) if len(froms) == 1 else []
        if len(addrs) != 1:
            return Reply(550, "5.6.0", "cannot parse header or From address: need exactly one From address")
        try:
            from_addr = parse_address(addrs[0][1])
        except ValueError as exc:
            return Reply(550, "5.6.0", f"cannot parse header or From address: {exc}")

        async def build() -> OutgoingMessage:
            return await self._build_submission(info, envelope, message, head, headers)

        req = SubmitRequest(
            account=info.account, source="smtp", login=info.username, msg_from=from_addr,
            mail_from=None if envelope.mail_from.is_null else envelope.mail_from.to_address(),
            recipients=[Address(r.localpart, r.domain_text) for r in envelope.recipients],
            build=build, client_fromid=True, canonical_i=True,
        )
        try:
            await submit(self.ctx, req)
        except _Refused as exc:
            return exc.reply
        except SubmitError as exc:
            return _submit_reply(exc)
        return Reply(250, "2.2.0", "it is done")

    async def _build_submission(
        self, info: SessionInfo, envelope: Envelope, message: ReceivedMessage, head: bytes, headers: Headers
    ) -> OutgoingMessage:
        """The SMTP side of a submission: header checks, Message-Id/Date, data-time verdicts."""
        require_tls: bool | None = True if envelope.requiretls else None
        tls_required = headers.get_all("TLS-Required")
        if not envelope.requiretls and tls_required and all(v.strip().lower() == "no" for v in tls_required):
            require_tls = False
        if headers.has("Return-Path"):
            raise _Refused(Reply(550, "5.6.0", "message should not have Return-Path header"))
        for _, verdict in await self._recipient_verdicts(envelope):
            if verdict is not None:
                raise _Refused(verdict)  # any hit refuses the whole submission, as in mox's local mode
        added = b""
        message_id = headers.get("Message-Id")
        if not message_id:
            mid = new_message_id(self.hostname)
            added += f"Message-Id: <{mid}>\r\n".encode()
            message_id = mid
        if not headers.has("Date"):
            added += f"Date: {format_date(datetime.now(UTC))}\r\n".encode()
        single = len(envelope.recipients) == 1
        return OutgoingMessage(
            data=message.data, path=None if message.data is not None else FsPath(message.path),
            size=message.size,
            received=self._received(info, str(envelope.recipients[0]) if single else ""),
            added=added,
            # mox's prefix order: Received, Message-Id/Date, DKIM-Signature, Authentication-Results.
            trailer=(
                f"Authentication-Results: {self.hostname}; auth=pass smtp.mailfrom={envelope.mail_from}\r\n"
            ).encode(),
            has8bit=message.has_8bit,
            smtputf8=envelope.smtputf8 or _needs_smtputf8(head, envelope),
            # Generated: the id without <> (observed in webhooks); given: as written.
            message_id=message_id,
            subject=headers.get("Subject"),
            headers=list(headers.items),
            require_tls=require_tls,
            next_attempt=envelope.future_release,
            future_release_request=envelope.future_release_request,
            extra={},
        )


class _Refused(Exception):
    """An SMTP-only refusal raised from the build step, with its reply."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


def _submit_reply(exc: SubmitError) -> Reply:
    """mox's SMTP wording of a refused submission."""
    f = exc.failure
    if f is Failure.FROM_DOMAIN_DISABLED:
        return Reply(451, "4.3.0", "domain of message from header is temporarily disabled")
    if f is Failure.FROM_NOT_ALLOWED:
        return Reply(550, "5.7.1", "message from address must belong to authenticated user")
    if f is Failure.MESSAGE_LIMIT:
        return Reply(
            451, "4.7.1",
            f"max number of messages ({exc.limit}) over past 24h reached, try increasing "
            "per-account setting MaxOutgoingMessagesPerDay",
        )
    if f is Failure.RECIPIENT_LIMIT:
        return Reply(
            451, "4.7.1",
            f"max number of new/first-time recipients ({exc.limit}) over past 24h reached, "
            "try increasing per-account setting MaxFirstTimeRecipientsPerDay",
        )
    if f is Failure.REJECTED and exc.rejection is not None:
        return _reply(exc.rejection)
    if f is Failure.MULTIPLE_RCPTS_FROMID:
        return Reply(554, "5.5.3", "cannot send to multiple recipients with chosen fromid")
    if f is Failure.BAD_FROMID:
        return Reply(554, "5.1.7", f"bad fromid in smtp mail from address: {exc.detail}")
    if f is Failure.HOOK_FAILED:
        return Reply(451, "4.3.0", "error processing")
    return Reply(451, "4.3.0", f"error delivering message: {exc.detail}")


def _localhost_domain(ctx: Any) -> bool:
    """Whether this server treats ``localhost`` as a mail domain (a plugin says so)."""
    own = ctx.service(OwnDomainAnswers)
    return own is not None and own.localhost_is_mail_domain


def _auth_inputs(
    info: SessionInfo, envelope: Envelope, message: ReceivedMessage, from_list: list[Any],
    hostname: str, localhost_domain: bool, head: bytes,
) -> Any:
    """What incoming authentication needs to know about this transaction."""
    from core.address import domain_to_ascii
    from core.mailauth.analyze import Inputs

    mf = envelope.mail_from
    from_domain = ""
    try:
        if len(from_list) == 1:
            from_domain = domain_to_ascii(parse_address(from_list[0][1]).domain)
        mf_domain = "" if mf.is_null or mf.ip is not None else domain_to_ascii(mf.domain)
    except (ValueError, UnicodeError):
        mf_domain = "" if mf.is_null or mf.ip is not None else mf.domain
    return Inputs(
        remote_ip=info.remote_ip, helo=info.ehlo_name,
        mail_from_localpart="" if mf.is_null else mf.localpart,
        mail_from_domain=mf_domain,
        msg_from_domain=from_domain, hostname=hostname, path=message.path, size=message.size,
        localhost_domain=localhost_domain, data=head if len(head) == message.size else None,
    )


def _needs_smtputf8(head: bytes, envelope: Envelope) -> bool:
    if any(not r.localpart.isascii() or not r.domain.isascii() for r in envelope.recipients):
        return True
    mf = envelope.mail_from
    if not mf.localpart.isascii() or not mf.domain.isascii():
        return True
    return any(b >= 0x80 for b in head.split(b"\r\n\r\n", 1)[0])


def _with_mailbox(match: Any, mailbox: str) -> Any:
    import dataclasses

    return dataclasses.replace(match, mailbox=mailbox)
