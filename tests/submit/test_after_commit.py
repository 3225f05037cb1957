"""The after-commit hook: each committed event reaches a plugin once normally, and
at least once (same id) across a plugin failure or a crash before acknowledgement."""

from __future__ import annotations

import smtplib
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from moxtrio import CommittedEvent, PluginContext, hookimpl
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.procs import ROOT, crashing, run_cli, running, unique_loopback_ip
from tests.support.thirdparty import install_package

PLUGIN = ROOT / "tests" / "thirdparty_plugins" / "moxtrio_aftercommit"
FIRST_PARTY = ["extra", "holdrules", "localserve", "metrics", "suppression", "webapi", "webhooks"]


class Recorder:
    def __init__(self, fail_first: bool = False) -> None:
        self.seen: list[tuple[int, str, str]] = []
        self.fail_first = fail_first

    @hookimpl
    async def moxtrio_after_commit(self, ctx: PluginContext, event: CommittedEvent) -> None:
        self.seen.append((event.id, event.kind, event.event.event))
        if self.fail_first and len(self.seen) == 1:
            raise ConnectionError("webhook endpoint down")


def send(ip: str, n: int) -> None:
    with smtplib.SMTP(ip, 1587, timeout=20) as s:
        s.login("mox@localhost", "moxmoxmox")
        for i in range(n):
            s.sendmail("mox@localhost", ["mox@localhost"], f"From: mox@localhost\r\nSubject: m{i}\r\n\r\nx\r\n".encode())


async def wait_until(cond: Callable[[], Any], timeout: float = 20) -> None:
    with trio.move_on_after(timeout):
        while not await cond():
            await trio.sleep(0.05)
        return
    raise AssertionError("condition not reached in time")


async def outbox_left(server: Any) -> int:
    return int(await server.ctx.store.read(lambda c: c.execute("select count(*) from outbox").fetchone()[0]))


async def test_each_event_once_and_acknowledged(tmp_path: Path) -> None:
    directory, ip = localserve_config_dir(tmp_path)
    rec = Recorder()
    async with running_server(directory, extra_plugins=[rec]) as server:
        await trio.to_thread.run_sync(send, ip, 3)

        async def acknowledged() -> bool:
            return len(rec.seen) >= 3 and await outbox_left(server) == 0

        await wait_until(acknowledged)
        ids = [i for i, _, _ in rec.seen]
        assert len(ids) == 3 and len(set(ids)) == 3  # once each
        assert {(k, e) for _, k, e in rec.seen} == {("outgoing", "delivered")}


async def test_failed_plugin_gets_the_event_again_with_the_same_id(tmp_path: Path) -> None:
    directory, ip = localserve_config_dir(tmp_path)
    rec = Recorder(fail_first=True)
    async with running_server(directory, extra_plugins=[rec]) as server:
        await trio.to_thread.run_sync(send, ip, 1)

        async def twice() -> bool:
            return len(rec.seen) >= 2 and await outbox_left(server) == 0

        await wait_until(twice)
        assert len(rec.seen) == 2 and rec.seen[0] == rec.seen[1]


async def test_no_outbox_without_an_after_commit_plugin(tmp_path: Path) -> None:
    directory, ip = localserve_config_dir(tmp_path)
    async with running_server(directory) as server:
        await trio.to_thread.run_sync(send, ip, 1)

        async def delivered() -> bool:
            n = await server.ctx.store.read(lambda c: c.execute("select count(*) from retired").fetchone()[0])
            return bool(n)

        await wait_until(delivered)
        tables = await server.ctx.store.read(
            lambda c: c.execute("select name from sqlite_master where name = 'outbox'").fetchall()
        )
        assert tables == []  # no plugin wants the events: no table, nothing recorded


def _lines(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


@pytest.mark.slow
def test_crash_between_hook_and_acknowledgement_delivers_again(tmp_path: Path) -> None:
    site = install_package(PLUGIN, tmp_path / "site", "aftercommit", "moxtrio-aftercommit")
    ip = unique_loopback_ip()
    directory = tmp_path / "ls"
    assert run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly").returncode == 0
    conf = directory / "mox.conf"
    conf.write_text(conf.read_text() + "Plugins:\n" + "".join(f"\t- {p}\n" for p in [*FIRST_PARTY, "aftercommit"]))
    (directory / "plugins").mkdir()
    log = tmp_path / "events.log"
    (directory / "plugins" / "aftercommit.yaml").write_text(f"log: {log}\n")

    with crashing(["localserve", "-dir", str(directory)], "outbox-before-ack", str(site)) as proc:
        send(ip, 1)
        assert proc.wait(timeout=30) == -9  # killed itself after the hook, before the ack
    [first] = _lines(log)
    event_id = first.split()[0]
    assert first.split()[1:] == ["delivered", "mox@localhost"]

    db = directory / "moxtrio.db"
    with running(["localserve", "-dir", str(directory)], directory, ip, extra_path=str(site)):
        for _ in range(400):  # bounded: 20 s
            conn = sqlite3.connect(db)
            try:
                left = conn.execute("select count(*) from outbox").fetchone()[0]
            finally:
                conn.close()
            if len(_lines(log)) >= 2 and left == 0:
                break
            time.sleep(0.05)
    lines = _lines(log)
    assert lines == [first, first]  # the same event, the same id, once more
    assert left == 0 and event_id.isdigit()
