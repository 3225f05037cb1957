"""Delivering one claimed batch over the network.

Order of precedence: a ``Fail`` transport fails at once; then a plugin may
take over (``moxtrio_deliver``: a development server delivers to its own listener);
otherwise the core delivers directly: MX lookup with the configured resolver,
MX hosts in order, opportunistic STARTTLS, REQUIRETLS when the message
requires it. Smarthost (Submission/Submissions/SMTP) and SOCKS transports
are not implemented yet: they fail temporarily with a clear error.
Every path ends in one :class:`RecipientOutcome` per batch entry.
"""

from __future__ import annotations

import logging
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import trio

from core.address import format_localpart
from core.delivery.client import DeliveryResult, deliver
from core.dispatch import HookFailed
from core.dns import DNSError, Resolver
from core.events import DeliveryBatch
from core.queue.attempt_log import report_attempt
from core.queue.results import RecipientOutcome
from core.queue.routing import TransportChoice
from core.store.models import QueueEntry

log = logging.getLogger("moxtrio.queue.deliver")


@dataclass
class DeliverySettings:
    """Knobs of direct delivery (tests point ``smtp_port`` at a sink)."""

    smtp_port: int = 25
    dial_timeout: float = 30.0
    session_timeout: float = 60.0
    read_timeout: float = 30.0
    #: Context for verified TLS (REQUIRETLS); None = system trust store.
    ssl_context: ssl.SSLContext | None = None


def smtp_address(localpart: str, domain: str, domain_str: str, smtputf8: bool) -> str:
    """Address as sent in MAIL FROM/RCPT TO ("" for the null sender)."""
    if not localpart and not domain:
        return ""
    if domain_str.startswith("["):
        return f"{format_localpart(localpart)}@{domain_str}"
    return f"{format_localpart(localpart)}@{domain_str if smtputf8 else domain}"


def mail_from_of(e: QueueEntry) -> str:
    return smtp_address(e.sender_localpart, e.sender_domain, e.sender_domain_str, e.smtputf8)


def rcpt_of(e: QueueEntry) -> str:
    return smtp_address(
        e.recipient_localpart, e.recipient_domain, e.recipient_domain_str, e.smtputf8
    )


def make_batch(batch: list[QueueEntry], message_path: Path | None) -> DeliveryBatch:
    e0 = batch[0]
    return DeliveryBatch(
        entries=list(batch),
        message_path=str(message_path) if message_path is not None else "",
        msg_prefix=e0.msg_prefix,
        mail_from=mail_from_of(e0),
        recipients=[rcpt_of(e) for e in batch],
        domain=e0.recipient_domain_str,
        has8bit=e0.has8bit,
        smtputf8=e0.smtputf8,
        require_tls=e0.require_tls,
    )


def _all(batch: list[QueueEntry], **kw: Any) -> list[RecipientOutcome]:
    return [RecipientOutcome(entry_id=e.id, ok=False, **kw) for e in batch]


def outcomes_from_result(batch: list[QueueEntry], res: DeliveryResult) -> list[RecipientOutcome]:
    """Per-recipient outcomes of a client result (per recipient: docs/differences.md, item 4)."""
    outs: list[RecipientOutcome] = []
    dialed = {res.host: list(res.dialed_ips)} if res.dialed_ips else {}
    for i, e in enumerate(batch):
        r = res.recipients[i] if i < len(res.recipients) else None
        if r is None:
            outs.append(
                RecipientOutcome(
                    entry_id=e.id, ok=False, error=res.error or "no result", dialed=dialed,
                    mx_host=res.host, tls=res.tls,
                )
            )
            continue
        error = "" if r.ok else (r.error or res.error or "delivery failed")
        outs.append(
            RecipientOutcome(
                entry_id=e.id,
                ok=r.ok,
                permanent=r.permanent and not r.ok,
                code=r.code,
                secode=r.secode,
                error=error,
                reply_lines=r.reply_lines,
                remote_host=res.host if r.code else "",
                dialed=dialed,
                mx_host=res.host,
                tls=res.tls,
            )
        )
    return outs


def fail_transport(batch: list[QueueEntry], choice: TransportChoice) -> list[RecipientOutcome]:
    """The ``Fail`` transport: the configured code, enhanced ``7.0``, permanent iff 5xx."""
    cfg = choice.config.Fail
    code = cfg.smtp_code
    msg = cfg.SMTPMessage or f"delivery failed by transport {choice.name}"
    permanent = code // 100 == 5
    line = f"{code} {code // 100}.7.0 {msg}"
    kind = "permanent" if permanent else "transient"
    return _all(
        batch,
        permanent=permanent,
        code=code,
        secode="7.0",
        error=f"{msg}, {kind}: {line}",
        reply_lines=[line],
    )


def _resolver(ctx: Any) -> Resolver:
    return ctx.resolver  # type: ignore[no-any-return]


async def direct_delivery(
    ctx: Any, settings: DeliverySettings, batch: list[QueueEntry], choice: TransportChoice,
    data: Path,
) -> list[RecipientOutcome]:
    """MX lookup and SMTP to the MX hosts in order, until one takes part in a transaction."""
    e0 = batch[0]
    resolver = _resolver(ctx)
    direct = getattr(choice.config, "Direct", None) if choice.config is not None else None
    try:
        mx = await resolver.lookup_mx(e0.recipient_domain_str)
    except DNSError as exc:
        return _all(batch, permanent=exc.permanent, error=str(exc))
    require_tls = e0.require_tls is True
    last: DeliveryResult | None = None
    last_error = "no mx hosts"
    for host in mx.hosts:
        ips = host.ips
        if not ips:
            try:
                ips = await resolver.lookup_ips(host.host)
            except DNSError as exc:
                last_error = str(exc)
                continue
        if direct is not None:
            ips = [
                ip
                for ip in ips
                if not (
                    (":" in ip and direct.DisableIPv6) or (":" not in ip and direct.DisableIPv4)
                )
            ]
        res = await deliver(
            host=host.host,
            ips=ips,
            port=settings.smtp_port,
            ehlo_name=ctx.config.static.Hostname,
            mail_from=mail_from_of(e0),
            recipients=[rcpt_of(e) for e in batch],
            data=data,
            prefix=e0.msg_prefix,
            has8bit=e0.has8bit,
            smtputf8=e0.smtputf8,
            require_tls=require_tls,
            tls_mode="opportunistic",
            tls_verify=require_tls,
            ssl_context=settings.ssl_context if require_tls else None,
            dial_timeout=settings.dial_timeout,
            session_timeout=settings.session_timeout,
            read_timeout=settings.read_timeout,
            resolver=resolver,
        )
        last = res
        replied = any(r.ok or r.code for r in res.recipients)
        if res.connected and (replied or res.permanent) and not res.requiretls_unsupported:
            break
    if last is None:
        return _all(batch, error=last_error)
    return outcomes_from_result(batch, last)


async def deliver_claimed(
    ctx: Any, settings: DeliverySettings, batch: list[QueueEntry], choice: TransportChoice
) -> list[RecipientOutcome]:
    """Deliver a claimed batch; never raises for delivery problems."""
    if choice.config is not None and choice.config.Fail is not None:
        return fail_transport(batch, choice)
    file_id = batch[0].file_id
    if not file_id:
        return await _deliver_from(ctx, settings, batch, choice, None)
    # On disk the stored file itself; on PostgreSQL a temp copy streamed from
    # the database, removed once the delivery is over.
    async with ctx.store.files.local_copy(file_id) as path:
        return await _deliver_from(ctx, settings, batch, choice, path)


async def _deliver_from(
    ctx: Any, settings: DeliverySettings, batch: list[QueueEntry], choice: TransportChoice,
    path: Path | None,
) -> list[RecipientOutcome]:
    try:
        res = await ctx.hooks.first("moxtrio_deliver", ctx=ctx, batch=make_batch(batch, path))
    except HookFailed as exc:
        log.error("delivery plugin failed: %s", exc)
        return _all(batch, error=f"delivery plugin failed: {exc.cause}")
    if isinstance(res, DeliveryResult):
        return outcomes_from_result(batch, res)
    if res is not None:
        log.error("moxtrio_deliver returned %r, expected a DeliveryResult", type(res))
        return _all(batch, error="delivery plugin returned an unusable result")
    if choice.config is not None and choice.config.Direct is None:
        return _all(
            batch, error=f'transport "{choice.name}": this kind of transport is not supported yet'
        )
    if path is None:
        return _all(batch, error="queue entry without a message file")
    return await direct_delivery(ctx, settings, batch, choice, path)


async def deliver_with_timing(
    ctx: Any, settings: DeliverySettings, batch: list[QueueEntry], choice: TransportChoice
) -> list[RecipientOutcome]:
    """:func:`deliver_claimed`, with each outcome's duration filled in."""
    t0 = trio.current_time()
    outs = await deliver_claimed(ctx, settings, batch, choice)
    ns = int((trio.current_time() - t0) * 1e9)
    for o in outs:
        o.duration_ns = ns
    report_attempt(batch, choice, outs, ns / 1e9)
    return outs
