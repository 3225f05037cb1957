"""An in-process localserve with SMTP listeners, for end-to-end SMTP tests."""

from __future__ import annotations

import smtplib
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from core.runtime import Server
from tests.support.inproc import localserve_config_dir, running_server

FROMID_ACCOUNT = """\t\tFromIDLoginAddresses:
\t\t\t- mox+app@localhost
"""


def with_fromid_login(text: str) -> str:
    """Add a fromid login address to the mox account."""
    return text.replace("\tmox:\n", "\tmox:\n" + FROMID_ACCOUNT, 1)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    directory, _ = localserve_config_dir(tmp_path, edit_domains=with_fromid_login)
    async with running_server(directory) as srv:
        yield srv


def ip_of(server: Server) -> str:
    return server.config.static.Listeners["local"].IPs[0]


async def in_thread(fn: Callable[[], Any]) -> Any:
    return await trio.to_thread.run_sync(fn)


def submit(ip: str, rcpts: list[str], data: bytes, *, login: str = "mox@localhost",
           mail_from: str = "mox@localhost", port: int = 1587) -> dict[str, Any]:
    with smtplib.SMTP(ip, port, timeout=20) as s:
        s.login(login, "moxmoxmox")
        return s.sendmail(mail_from, rcpts, data)


async def wait_rows(server: Server, sql: str, args: tuple[Any, ...] = (), n: int = 1,
                    timeout: float = 15) -> list[Any]:
    """Poll the store until ``sql`` returns at least ``n`` rows (bounded)."""
    rows: list[Any] = []
    with trio.move_on_after(timeout):
        while True:
            rows = await server.ctx.store.read(lambda c: c.execute(sql, args).fetchall())  # type: ignore[union-attr]
            if len(rows) >= n:
                return rows
            await trio.sleep(0.05)
    raise AssertionError(f"timeout waiting for {n} rows of {sql!r}; got {rows}")
