"""The running server's domains.conf reloader: a check per interval, in a worker thread.

mox re-reads domains.conf when its modification time changes. Checking on
access would stat (and on a change parse) the file on the trio thread in
the middle of RCPT TO or a webapi login; instead this task does the check
in a worker thread once per :attr:`Config.reload_interval` and the config
swaps in a new immutable snapshot that readers pick up on their next read.
The plugin settings files are re-read the same way, in a worker thread.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from core.config.loader import Config

log = logging.getLogger("moxtrio.config")


async def run_reloader(
    config: Config,
    refresh: Callable[[], Awaitable[None]] | None = None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Check domains.conf (and, with ``refresh``, the plugin settings files) until cancelled."""
    task_status.started()
    while True:
        await trio.sleep(config.reload_interval)
        try:
            await trio.to_thread.run_sync(config.reload_dynamic)
            if refresh is not None:
                await refresh()
        except Exception:  # noqa: BLE001 - a failed check must not stop the server
            log.exception("config: checking domains.conf for changes")
