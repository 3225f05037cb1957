"""Playing a hung server for localserve's ``timeout`` localparts.

mox's localserve sleeps an hour before it answers such a command; so do we,
unless the SMTP listeners shut down first (a stopping server must not wait
an hour on a simulated hang). The verdict hooks have a time limit, so the
waiting is handed back to the SMTP server as the rejection's ``stall``.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import trio

from moxtrio import PluginContext, Rejection

#: How long a simulated hang lasts, as in mox.
SIMULATED_HANG = 3600.0


async def hang(ctx: PluginContext) -> None:
    """Wait like a hung server: an hour, or until the SMTP listeners stop."""
    shutdown = ctx.core.smtp_shutdown
    with trio.move_on_after(SIMULATED_HANG):
        if shutdown is not None:
            await shutdown.wait()
        else:
            await trio.sleep_forever()


def with_hang(ctx: PluginContext, rejection: Rejection | None) -> Rejection | None:
    """``rejection`` with the hang attached when it plays a timeout."""
    if rejection is None or not rejection.timeout:
        return rejection
    return dataclasses.replace(rejection, stall=partial(hang, ctx))
