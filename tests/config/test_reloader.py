"""The server's domains.conf reloader: readers see a snapshot, a worker thread swaps it."""

from __future__ import annotations

import os
from pathlib import Path

import trio

from core.config import load_config
from core.config.reloader import run_reloader
from tests.config.test_loader import DOMAINS_CONF, write


def _bump_mtime(p: Path) -> None:
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 2_000_000_000))


async def test_reader_sees_snapshot_until_reloader_swaps_it(tmp_path: Path) -> None:
    c = load_config(write(tmp_path))
    first = c.snapshot
    dpath = tmp_path / "domains.conf"
    dpath.write_text(DOMAINS_CONF.replace("Bearer secret", "Bearer new"))
    _bump_mtime(dpath)
    # Reading never checks the file: the old snapshot stays until a reload.
    assert c.dynamic is first.dynamic and c.lookups is first.lookups
    c.reload_interval = 0.05
    async with trio.open_nursery() as nursery:
        await nursery.start(run_reloader, c)
        with trio.move_on_after(10):
            while c.snapshot is first:
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    assert c.snapshot is not first
    assert c.dynamic.Accounts["app"].OutgoingWebhook.Authorization == "Bearer new"  # type: ignore[union-attr]
    assert c.snapshot.dynamic is c.dynamic and c.snapshot.lookups is c.lookups


async def test_reloader_keeps_running_after_a_broken_edit(tmp_path: Path) -> None:
    c = load_config(write(tmp_path))
    good = c.snapshot.dynamic
    dpath = tmp_path / "domains.conf"
    c.reload_interval = 0.05
    async with trio.open_nursery() as nursery:
        await nursery.start(run_reloader, c)
        dpath.write_text(DOMAINS_CONF + "Bogus: 1\n")
        _bump_mtime(dpath)
        with trio.move_on_after(10):
            while c.last_reload_error is None:
                await trio.sleep(0.02)
        assert c.dynamic is good
        dpath.write_text(DOMAINS_CONF.replace("Bearer secret", "Bearer fixed"))
        _bump_mtime(dpath)
        _bump_mtime(dpath)
        with trio.move_on_after(10):
            while c.dynamic is good:
                await trio.sleep(0.02)
        nursery.cancel_scope.cancel()
    assert c.last_reload_error is None
    assert c.dynamic.Accounts["app"].OutgoingWebhook.Authorization == "Bearer fixed"  # type: ignore[union-attr]
