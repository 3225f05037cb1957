"""The cyclic garbage collector's schedule in a server process: off while it starts.

A starting server creates several hundred thousand objects that live as
long as it does (modules, classes, functions, the config) and a few
thousand that are garbage. With the collector on, allocation counts
trigger collections that walk the growing heap again and again: about a
tenth of the start-up CPU. So ``serve`` and commands of plugins that run a server
start with the collector off. Shortly after the server is ready (the
first requests answered) one full collection frees the start-up garbage,
``gc.freeze`` moves what remains to the permanent generation (later full
collections no longer walk it) and the collector is back on.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

import trio

#: Seconds after the server is ready before the deferred collection.
SETTLE_SECONDS = 1.0


@contextmanager
def paused() -> Iterator[None]:
    """The collector off for the block, unless :func:`resume_after_start` ran first."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


async def resume_after_start(delay: float = SETTLE_SECONDS) -> None:
    """Collect once, freeze the long-lived heap and turn the collector on."""
    await trio.sleep(delay)
    gc.collect()
    gc.freeze()
    gc.enable()
