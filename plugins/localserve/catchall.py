"""localserve accepts mail for every address, as mox's localserve does.

An address no account has goes to the ``mox`` account (``mox@localhost``),
or to the postmaster when the configuration has no such address. On
submission the recipient is accepted and the queue delivers it to our own
delivery listener, which applies the same fallback.
"""

from __future__ import annotations

from moxtrio import PluginContext

CATCHALL = "mox@localhost"


def fallback_recipient(ctx: PluginContext) -> str:
    """Where mail for an unknown address is filed."""
    if ctx.config.lookup_destination(CATCHALL) is not None:
        return CATCHALL
    return "postmaster"
