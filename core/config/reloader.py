"""The running server's domains.conf reloader: a check per interval, in a worker thread.

mox re-reads domains.conf when its modification time changes. Checking on
access would stat (and on a change parse) the file on the trio thread in
the middle of RCPT TO or a webapi login; instead this task does the check
in a worker thread once per :attr:`Config.reload_interval` and the config
swaps in a new immutable snapshot that readers pick up on their next read.
"""

from __future__ import annotations

import logging

import trio

from core.config.loader import Config

log = logging.getLogger("moxtrio.config")


async def run_reloader(
    config: Config, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Check domains.conf for changes until cancelled."""
    task_status.started()
    while True:
        await trio.sleep(config.reload_interval)
        try:
            await trio.to_thread.run_sync(config.reload_dynamic)
        except Exception:  # noqa: BLE001 - a failed check must not stop the server
            log.exception("config: checking domains.conf for changes")
