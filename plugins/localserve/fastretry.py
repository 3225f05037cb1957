"""Fast retries in localserve (``moxtrio localserve -fast-retries``, a moxtrio extension).

A developer testing temporary failures should not wait 7m30s, 15m, 30m...
for the queue's retry schedule. With the flag, a task makes every waiting
retry due again once a second (the attempt count still grows, so DSNs and
the final failure after the last attempt happen as they would, only
sooner). Without the flag, ``moxtrio localserve retry-now`` does the same
once.
"""

from __future__ import annotations

import logging

import trio

from moxtrio import CtlCommand, CtlRequest, CtlResult, PluginContext

log = logging.getLogger("moxtrio.localserve.fastretry")

INTERVAL = 1.0


async def retry_now(ctx: PluginContext) -> int:
    if not ctx.has_queue:
        return 0
    return int(await ctx.queue.retry_now())


def make_task(ctx: PluginContext) -> object:
    async def fast_retries(*, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        log.info("fast retries: waiting retries are made due every %gs", INTERVAL)
        while True:
            await trio.sleep(INTERVAL)
            try:
                n = await retry_now(ctx)
            except Exception:  # noqa: BLE001 - try again next round
                log.exception("fast retries")
                continue
            if n:
                log.debug("fast retries: %d message(s) due now", n)

    return fast_retries


async def cmd_retry_now(ctx: PluginContext, req: CtlRequest) -> CtlResult:
    if req.args:
        return CtlResult("usage: moxtrio localserve retry-now\n", 2)
    if not ctx.localserve:
        return CtlResult("retry-now is only available in localserve\n", 1)
    n = await retry_now(ctx)
    return CtlResult(f"{n} message(s) scheduled for immediate retry\n")


def ctl_commands() -> list[CtlCommand]:
    return [
        CtlCommand(
            ("localserve", "retry-now"), cmd_retry_now,
            "make every waiting retry of the queue due now (localserve)",
        )
    ]
