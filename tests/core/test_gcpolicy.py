"""The collector is off while a server starts and back on, with a frozen heap, after."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from core import gcpolicy


@pytest.fixture
def collector() -> Iterator[None]:
    """Leave the test process's collector as it was found."""
    was_enabled = gc.isenabled()
    try:
        yield
    finally:
        gc.unfreeze()
        if was_enabled:
            gc.enable()
        else:
            gc.disable()


def test_paused_turns_the_collector_off_for_the_block_only(collector: None) -> None:
    gc.enable()
    with gcpolicy.paused():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_paused_leaves_an_off_collector_off(collector: None) -> None:
    gc.disable()
    with gcpolicy.paused():
        assert not gc.isenabled()
    assert not gc.isenabled()


class Node:
    """A weak-referenceable object that can sit in a reference cycle."""

    def __init__(self) -> None:
        self.me: Node | None = None


async def test_resume_after_start_collects_freezes_and_turns_the_collector_on(collector: None) -> None:
    gc.unfreeze()
    with gcpolicy.paused():
        # A cycle made while the collector is off stays until the deferred collection.
        node = Node()
        node.me = node
        ref = weakref.ref(node)
        del node
        assert ref() is not None
        await gcpolicy.resume_after_start(delay=0)
        assert ref() is None
        assert gc.isenabled()
        assert gc.get_freeze_count() > 0
