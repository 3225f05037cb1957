"""Fixtures: an in-process localserve server and a sherpa client for /admin/ and /account/."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.runtime import Server
from tests.support.inproc import localserve_config_dir, running_server

ADMIN_PASSWORD = "moxadmin"
PASSWORD = "moxmoxmox"


@dataclass
class Sherpa:
    """A logged-in (or not) client of one web interface, with its own cookie jar."""

    http: httpx.AsyncClient
    base: str
    csrf: str = ""
    headers: dict[str, str] = field(default_factory=dict)

    async def post(self, fn: str, *params: Any, csrf: str | None = None) -> httpx.Response:
        headers = {"Content-Type": "application/json"}
        token = self.csrf if csrf is None else csrf
        if token:
            headers["x-mox-csrf"] = token
        return await self.http.post(self.base + "api/" + fn, content=json.dumps({"params": list(params)}),
                                    headers=headers)

    async def call(self, fn: str, *params: Any) -> Any:
        r = await self.post(fn, *params)
        assert r.status_code == 200, r.text
        d = r.json()
        assert "error" not in d, d
        return d.get("result")

    async def error(self, fn: str, *params: Any, csrf: str | None = None, status: int = 200) -> dict[str, str]:
        r = await self.post(fn, *params, csrf=csrf)
        assert r.status_code == status, r.text
        d = r.json()
        assert list(d) == ["error"], d
        return dict(d["error"])

    async def login(self, *credentials: str) -> str:
        token = await self.call("LoginPrep")
        self.csrf = await self.call("Login", token, *credentials)
        return self.csrf


@dataclass
class WebServer:
    server: Server
    ip: str
    directory: Path
    clients: list[httpx.AsyncClient]

    @property
    def ctx(self) -> Any:
        assert self.server.ctx is not None
        return self.server.ctx

    def client(self, base: str) -> Sherpa:
        http = httpx.AsyncClient(timeout=20)
        self.clients.append(http)
        return Sherpa(http, f"http://{self.ip}:1080{base}")

    async def admin(self) -> Sherpa:
        c = self.client("/admin/")
        await c.login(ADMIN_PASSWORD)
        return c

    async def account(self, address: str = "mox@localhost", password: str = PASSWORD) -> Sherpa:
        c = self.client("/account/")
        await c.login(address, password)
        return c


Edit = Callable[[str], str]


async def start(tmp_path: Path, *, edit_domains: Edit | None = None,
                directory: Path | None = None, ip: str | None = None) -> AsyncIterator[WebServer]:
    if directory is None:
        directory, ip = localserve_config_dir(tmp_path, edit_domains=edit_domains)
    assert ip is not None
    clients: list[httpx.AsyncClient] = []
    async with running_server(directory) as server:
        try:
            yield WebServer(server, ip, directory, clients)
        finally:
            for c in clients:
                await c.aclose()


@pytest.fixture
async def web(tmp_path: Path) -> AsyncIterator[WebServer]:
    async for s in start(tmp_path):
        yield s


async def webapi(web: WebServer, method: str, request: dict[str, Any],
                 auth: tuple[str, str] = ("mox@localhost", PASSWORD)) -> httpx.Response:
    """Call the webapi (mox's /webapi/v0/) as an application would."""
    async with httpx.AsyncClient(timeout=20) as http:
        return await http.post(f"http://{web.ip}:1080/webapi/v0/{method}",
                               data={"request": json.dumps(request)}, auth=auth)


async def send(web: WebServer, rcpt: str, subject: str = "hello") -> int:
    """webapi Send of a small message to ``rcpt``; returns its queue ID."""
    r = await webapi(web, "Send", {"To": [{"Address": rcpt}], "Subject": subject, "Text": "hi\n"})
    assert r.status_code == 200, r.text
    return int(r.json()["Submissions"][0]["QueueMsgID"])
