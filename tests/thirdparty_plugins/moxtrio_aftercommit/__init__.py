"""moxtrio-aftercommit: a plugin with a side effect outside the store, written from docs/plugins.md.

It implements ``moxtrio_after_commit`` and appends one line per call
(``<event id> <event name> <recipient>``) to the file named in
``<config dir>/plugins/aftercommit.yaml`` (``log: /path``), standing in
for a call over the network. The crash tests count the lines per id.
"""

from __future__ import annotations

import os

import trio

from moxtrio import CommittedEvent, PluginConfigError, PluginContext, hookimpl

NAME = "aftercommit"
_log: list[str] = []


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    path = ctx.plugin_settings(NAME).get("log")
    if not isinstance(path, str) or not path:
        raise PluginConfigError("aftercommit.yaml: log: a file path is required")
    _log[:] = [path]


def _append(line: str) -> None:
    fd = os.open(_log[0], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@hookimpl
async def moxtrio_after_commit(ctx: PluginContext, event: CommittedEvent) -> None:
    await trio.to_thread.run_sync(_append, f"{event.id} {event.event.event} {event.event.recipient}\n")
