"""Localserve delivery: the queue delivers every batch to our own SMTP listener.

Why: in localserve nothing may leave the machine, yet the queue, webhooks,
DSNs and suppression lists should behave as with real remote servers. So
each batch goes over real SMTP to the server's own delivery listener, where
special localparts produce the simulated failures, as in mox's localserve.

One transaction for the batch (EHLO ``localhost``, opportunistic STARTTLS
without verification), with one exception, moxtrio's fix of a mox bug
(docs/differences.md, item 4): a recipient that our listener will fail at
DATA gets a transaction of its own when the batch has several recipients.
SMTP has a single DATA reply per transaction, so in a shared transaction
that failure would be lost and the recipient reported as delivered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from core.delivery.client import deliver
from moxtrio import DeliveryBatch, DeliveryResult, PluginContext
from plugins.localserve.followups import FollowUp, FollowUps
from plugins.localserve.scenarios import Scenario, first_attempt_failure, scenario_of
from plugins.localserve.settings import EHLO_NAME, Target, Timeouts, delivery_target, load_timeouts
from plugins.localserve.simulate import fails_at_data


def uses_fail_transport(ctx: PluginContext, batch: DeliveryBatch) -> bool:
    """A configured ``Fail`` transport takes precedence over localserve, as in mox."""
    transports = ctx.config.static.Transports or {}
    for entry in batch.entries:
        name = getattr(entry, "transport", "") or ""
        t = transports.get(name) if name else None
        if t is not None and t.Fail is not None:
            return True
    return False


def plan_transactions(recipients: list[str]) -> list[list[int]]:
    """Indices of ``recipients`` per SMTP transaction, in the order to report them.

    Everyone shares one transaction, except recipients that will fail at
    DATA when there is more than one recipient: each of those goes alone.
    """
    if len(recipients) <= 1:
        return [list(range(len(recipients)))]
    shared = [i for i, r in enumerate(recipients) if not fails_at_data(r)]
    alone = [[i] for i, r in enumerate(recipients) if fails_at_data(r)]
    return ([shared] if shared else []) + alone


async def _transaction(
    ctx: PluginContext, batch: DeliveryBatch, idxs: list[int], target: Target, timeouts: Timeouts
) -> DeliveryResult:
    recipients = [batch.recipients[i] for i in idxs]
    # The queue links this connection to its entries, so our listener can
    # mark them delivered in the transaction that stores the message.
    loopback = getattr(ctx.queue if ctx.has_queue else None, "loopback", None)
    entries = [batch.entries[i] for i in idxs] if len(batch.entries) == len(batch.recipients) else []
    addrs: list[tuple[str, int]] = []

    def connected(ip: str, port: int) -> None:
        if loopback is not None and entries:
            loopback.register(ip, port, entries)
            addrs.append((ip, port))

    try:
        return await _deliver(batch, recipients, target, timeouts, connected)
    finally:
        for ip, port in addrs:
            if loopback is not None:
                loopback.unregister(ip, port)


async def _deliver(
    batch: DeliveryBatch,
    recipients: list[str],
    target: Target,
    timeouts: Timeouts,
    connected: Callable[[str, int], None],
) -> DeliveryResult:
    return await deliver(
        host=target.host,
        ips=target.ips,
        port=target.port,
        ehlo_name=EHLO_NAME,
        mail_from=batch.mail_from,
        recipients=recipients,
        data=batch.message_path,
        prefix=batch.msg_prefix,
        has8bit=batch.has8bit,
        smtputf8=batch.smtputf8,
        require_tls=bool(batch.require_tls),
        tls_mode="opportunistic",
        tls_verify=False,
        dial_timeout=timeouts.dial_timeout,
        session_timeout=timeouts.session_timeout,
        read_timeout=timeouts.read_timeout,
        data_timeout=timeouts.data_timeout,
        on_connect=connected,
    )


def merge_results(
    host: str, port: int, n: int, groups: list[list[int]], parts: list[DeliveryResult]
) -> DeliveryResult:
    """One DeliveryResult for the batch, recipients back in their original order.

    Connection details come from the first transaction (the shared one); a
    transaction-level error is reported only when every transaction had one,
    so it never claims to describe recipients that were delivered.
    """
    main = parts[0]
    recipients: list[Any] = [None] * n
    for idxs, part in zip(groups, parts, strict=True):
        for i, rr in zip(idxs, part.recipients, strict=True):
            recipients[i] = rr
    dialed: list[str] = []
    for part in parts:
        dialed.extend(part.dialed_ips)
    merged = DeliveryResult(
        host=host,
        port=port,
        recipients=recipients,
        ip=main.ip,
        dialed_ips=dialed,
        connected=any(p.connected for p in parts),
        tls=main.tls,
        tls_version=main.tls_version,
        remote_helo=main.remote_helo,
        plaintext_fallback=any(p.plaintext_fallback for p in parts),
        requiretls_unsupported=any(p.requiretls_unsupported for p in parts),
    )
    if all(p.error for p in parts):
        merged.error = main.error
        merged.permanent = main.permanent
        merged.code = main.code
        merged.secode = main.secode
    return merged


async def deliver_batch(ctx: PluginContext, batch: DeliveryBatch) -> DeliveryResult:
    """Deliver ``batch`` to our own SMTP listener; one result per recipient, in order.

    Scenario recipients (:mod:`plugins.localserve.scenarios`): a
    ``tempthenok`` recipient's first attempt is answered without SMTP, a
    ``delay<N>`` recipient gets its own transaction N seconds later, and
    delivered ``complaint``/``latebounce`` recipients get their follow-up.
    """
    target = delivery_target(ctx)
    timeouts = load_timeouts(ctx)
    rcpts = list(batch.recipients)
    scen = [scenario_of(r) for r in rcpts]
    synthetic = [
        i for i, sc in enumerate(scen)
        if sc is not None and sc.kind == "tempthenok" and _attempt(batch, i) <= 1
    ]
    delays = {i: sc.seconds for i, sc in enumerate(scen) if sc is not None and sc.kind == "delay"}
    rest = [i for i in range(len(rcpts)) if i not in synthetic and i not in delays]
    groups = [[rest[j] for j in g] for g in plan_transactions([rcpts[i] for i in rest])] if rest else []
    groups += [[i] for i in sorted(delays)]
    if len(groups) == 1 and not synthetic and not delays:
        result = await _transaction(ctx, batch, list(range(len(rcpts))), target, timeouts)
    else:
        result = await _split(ctx, batch, groups, synthetic, delays, target, timeouts)
    await _follow_up(ctx, batch, scen, result)
    return result


def _attempt(batch: DeliveryBatch, i: int) -> int:
    """This attempt's number (the queue counts it before delivering)."""
    entries = batch.entries
    return int(getattr(entries[i], "attempts", 1)) if i < len(entries) else 1


async def _split(
    ctx: PluginContext,
    batch: DeliveryBatch,
    groups: list[list[int]],
    synthetic: list[int],
    delays: dict[int, int],
    target: Target,
    timeouts: Timeouts,
) -> DeliveryResult:
    parts: list[DeliveryResult | None] = [None] * len(groups)

    async def run(k: int) -> None:
        wait = max(delays.get(i, 0) for i in groups[k])
        if wait:
            await trio.sleep(wait)
        parts[k] = await _transaction(ctx, batch, groups[k], target, timeouts)

    # Concurrently: a "timeout" recipient must not delay the others' results
    # by a whole read timeout.
    async with trio.open_nursery() as nursery:
        for k in range(len(groups)):
            nursery.start_soon(run, k)
    done = [p for p in parts if p is not None]
    assert len(done) == len(groups)
    if synthetic:
        groups = [*groups, synthetic]
        done.append(DeliveryResult(
            host=target.host, port=target.port, connected=True,
            ip=target.ips[0] if target.ips else None,
            recipients=[first_attempt_failure(batch.recipients[i]) for i in synthetic],
        ))
    return merge_results(target.host, target.port, len(batch.recipients), groups, done)


def _header_section(batch: DeliveryBatch) -> bytes:
    with open(batch.message_path, "rb") as fh:
        data = batch.msg_prefix + fh.read(256 * 1024)
    end = data.find(b"\r\n\r\n")
    return data if end < 0 else data[: end + 4]


async def _follow_up(
    ctx: PluginContext, batch: DeliveryBatch, scen: list[Scenario | None], result: DeliveryResult
) -> None:
    """Hand delivered complaint/latebounce recipients to the follow-up sender."""
    wanted = [
        i for i, sc in enumerate(scen)
        if sc is not None and sc.kind in ("complaint", "latebounce") and result.recipients[i].ok
    ]
    followups = ctx.service(FollowUps)
    if not wanted or followups is None or not batch.mail_from:
        return
    headers = await trio.to_thread.run_sync(_header_section, batch)
    for i in wanted:
        kind = scen[i].kind  # type: ignore[union-attr]
        followups.submit(FollowUp(kind, batch.mail_from, batch.recipients[i], headers))
