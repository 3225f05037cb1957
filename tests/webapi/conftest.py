"""Fixtures: a whole moxtrio server in-process (real sockets, real store) and helpers
to call the webapi over HTTP with httpx."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.runtime import Server
from core.store.messages import insert_message
from core.store.models import MessageMeta
from core.store.settings import DatabaseSettings
from tests.support.inproc import localserve_config_dir, running_server

AUTH = ("mox@localhost", "moxmoxmox")


@dataclass
class WebapiServer:
    server: Server
    ip: str
    directory: Path
    http: httpx.AsyncClient

    @property
    def ctx(self) -> Any:
        assert self.server.ctx is not None
        return self.server.ctx

    @property
    def base(self) -> str:
        return f"http://{self.ip}:1080/webapi/"

    @property
    def v0(self) -> str:
        return self.base + "v0/"

    async def post(self, method: str, request: Any = None, *, auth: Any = AUTH, raw: str | None = None,
                   files: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
        body = raw if raw is not None else json.dumps(request if request is not None else {})
        if files is not None:
            return await self.http.post(self.v0 + method, data={"request": body}, files=files, auth=auth,
                                        headers=headers)
        return await self.http.post(self.v0 + method, data={"request": body}, auth=auth, headers=headers)

    async def call(self, method: str, request: Any = None, **kw: Any) -> Any:
        r = await self.post(method, request, **kw)
        assert r.status_code == 200, r.text
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        return r.json()

    async def error(self, method: str, request: Any = None, **kw: Any) -> tuple[str, str]:
        r = await self.post(method, request, **kw)
        assert r.status_code == 400, (r.status_code, r.text)
        assert r.headers["content-type"] == "application/json; charset=utf-8"
        assert r.text.endswith("\n")
        d = r.json()
        assert list(d) == ["Code", "Message"]
        return d["Code"], d["Message"]

    async def queued(self, queue_id: int) -> tuple[Any, bytes]:
        """A queue entry and the message as it would be sent (prefix + file)."""
        queue = self.ctx.queue
        entry = await queue.get(queue_id)
        return entry, await queue.open_message(queue_id)

    async def store_message(self, data: bytes, mailbox: str = "Inbox", *,
                            meta: MessageMeta | None = None, flags: tuple[str, ...] = ()) -> int:
        ctx = self.ctx
        file_id = await ctx.store.files.store(data)

        def write(conn: sqlite3.Connection) -> int:
            return insert_message(conn, "mox", mailbox, file_id, len(data), meta=meta, flags=flags)

        return int(await ctx.store.write(write))


Edit = Callable[[str], str]


async def start(tmp_path: Path, *, edit_domains: Edit | None = None,
                edit_mox: Edit | None = None, extra_plugins: list[Any] | None = None,
                ) -> AsyncIterator[WebapiServer]:
    directory, ip = localserve_config_dir(tmp_path, edit_domains=edit_domains, edit_mox=edit_mox)
    async with running_server(directory, extra_plugins=extra_plugins) as server, httpx.AsyncClient(timeout=20) as http:
        yield WebapiServer(server, ip, directory, http)


@pytest.fixture
async def srv(tmp_path: Path) -> AsyncIterator[WebapiServer]:
    async for s in start(tmp_path):
        yield s


def add_account_settings(settings: str) -> Edit:
    """An edit_domains function inserting lines (tab-indented at account level) into account mox."""

    def edit(text: str) -> str:
        marker = "\tmox:\n"
        assert marker in text
        lines = "".join(f"\t\t{line}\n" for line in settings.strip("\n").split("\n"))
        return text.replace(marker, marker + lines, 1)

    return edit


@pytest.fixture(autouse=True)
def _both_backends(default_db_backend: DatabaseSettings | None) -> DatabaseSettings | None:
    """Every test here runs on SQLite and on PostgreSQL (ids ``sqlite``/``postgres``)."""
    return default_db_backend
