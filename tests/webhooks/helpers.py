"""Test support: a real HTTP receiver on loopback, config edits, and a harness
with a real store, the real hook dispatcher and the webhooks plugin."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trio

from core.cluster import ClusterNode
from core.config import load_config
from core.dispatch import HookDispatcher
from core.events import OutgoingEvent
from core.plugin_api import PluginContext
from core.plugins import create_manager
from core.queue.clock import FakeClock
from core.store import Store
from plugins.localserve.init import write_localserve_config
from plugins.webhooks.service import WebhookService
from tests.support import backend

START = datetime(2026, 11, 23, 23, 57, 48, 512469, tzinfo=UTC)


@dataclass
class Request:
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    at: float

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """stdlib HTTP server in a thread; per-path status and hanging paths."""

    status: int = 200
    statuses: dict[str, int] = field(default_factory=dict)
    hang: set[str] = field(default_factory=set)
    #: Location header per path (redirects).
    locations: dict[str, str] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def for_path(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    async def wait(self, n: int, path: str | None = None, timeout: float = 10.0) -> list[Request]:
        with trio.move_on_after(timeout):
            while True:
                got = self.requests if path is None else self.for_path(path)
                if len(got) >= n:
                    return list(got)
                await trio.sleep(0.01)
        raise AssertionError(f"receiver got {len(self.requests)} requests, wanted {n} on {path}")


@asynccontextmanager
async def receiver(**kw: Any) -> AsyncIterator[Receiver]:
    import time

    rec = Receiver(**kw)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            rec.requests.append(Request(self.path, list(self.headers.items()), body, time.monotonic()))
            if self.path in rec.hang:
                rec.stop.wait(30)
            code = rec.statuses.get(self.path, rec.status)
            text = b"ok" if 200 <= code < 300 else b"failure " + b"x" * 600
            self.send_response(code)
            if self.path in rec.locations:
                self.send_header("Location", rec.locations[self.path])
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield rec
    finally:
        rec.stop.set()
        await trio.to_thread.run_sync(server.shutdown)
        server.server_close()


def account_edit(
    *,
    out_url: str = "",
    in_url: str = "",
    auth: str = "",
    events: list[str] | None = None,
    secret: str = "",
    keep_webhooks: str | None = None,
    fromid_login: bool = False,
) -> Callable[[str], str]:
    """A domains.conf edit adding webhook settings to account ``mox``."""
    lines = []
    if out_url:
        lines += ["\t\tOutgoingWebhook:", f"\t\t\tURL: {out_url}"]
        if auth:
            lines.append(f"\t\t\tAuthorization: {auth}")
        if events:
            lines.append("\t\t\tEvents:")
            lines += [f"\t\t\t\t- {e}" for e in events]
    if in_url:
        lines += ["\t\tIncomingWebhook:", f"\t\t\tURL: {in_url}"]
        if auth:
            lines.append(f"\t\t\tAuthorization: {auth}")
    if fromid_login:
        lines += ["\t\tFromIDLoginAddresses:", "\t\t\t- mox+app@localhost"]
    if secret:
        lines.append(f"\t\tWebhookSigningSecret: {secret}")
    block = "".join(line + "\n" for line in lines)

    def edit(text: str) -> str:
        if keep_webhooks is not None:
            text = text.replace(
                "KeepRetiredWebhookPeriod: 72h0m0s", f"KeepRetiredWebhookPeriod: {keep_webhooks}"
            )
        return text.replace("\tmox:\n", "\tmox:\n" + block, 1)

    return edit


@dataclass
class Harness:
    ctx: PluginContext
    svc: WebhookService
    clock: FakeClock
    hooks: HookDispatcher

    async def raise_event(self, event: OutgoingEvent) -> None:
        def tx(conn: sqlite3.Connection) -> None:
            self.hooks.call_sync("moxtrio_outgoing_event", conn=conn, event=event)

        await self.ctx.store.write(tx)

    async def rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
        return await self.ctx.store.read(lambda c: [tuple(r) for r in c.execute(sql, args)])

    async def wait_rows(self, sql: str, args: tuple[Any, ...] = (), n: int = 1,
                        timeout: float = 10.0) -> list[Any]:
        return await wait_rows(self.ctx.store, sql, args, n, timeout)


async def wait_rows(store: Store, sql: str, args: tuple[Any, ...] = (), n: int = 1,
                    timeout: float = 10.0) -> list[Any]:
    """Poll (bounded) until ``sql`` returns at least ``n`` committed rows.

    A webhook attempt is recorded after the receiver answered it, so a
    test that saw the request waits here for the attempt's rows.
    """
    rows: list[Any] = []
    with trio.move_on_after(timeout):
        while True:
            rows = await store.read(lambda c: [tuple(r) for r in c.execute(sql, args)])
            if len(rows) >= n:
                return rows
            await trio.sleep(0.01)
    raise AssertionError(f"timeout waiting for {n} rows of {sql!r}: {rows}")


@asynccontextmanager
async def harness(
    tmp_path: Path, edit: Callable[[str], str], settings: str = "", start: bool = True,
    localserve: bool = True, resolver: Any = None, node: ClusterNode | None = None,
) -> AsyncIterator[Harness]:
    """Config + store + dispatcher with the webhooks plugin + a running service."""
    conf = tmp_path / "conf"
    write_localserve_config(conf, "127.0.0.1")
    p = conf / "domains.conf"
    p.write_text(edit(p.read_text()))
    if settings:
        (conf / "plugins").mkdir(exist_ok=True)
        (conf / "plugins" / "webhooks.yaml").write_text(settings)
    config = load_config(conf / "mox.conf")
    hooks = HookDispatcher(create_manager(["webhooks"]))
    store = await Store.open(tmp_path / "data", hooks.setup("moxtrio_migrations"), database=backend.current())
    clock = FakeClock(START)
    ctx = PluginContext(config=config, store=store, hooks=hooks, localserve=localserve)
    ctx.clock = clock
    if resolver is not None:
        ctx.resolver = resolver
    if node is not None:
        ctx.cluster = node
    try:
        hooks.setup("moxtrio_configure", ctx=ctx)
        svc = ctx.service(WebhookService)
        async with trio.open_nursery() as nursery:
            if start:
                await nursery.start(svc.run)
            yield Harness(ctx=ctx, svc=svc, clock=clock, hooks=hooks)
            nursery.cancel_scope.cancel()
    finally:
        await store.aclose()


def event(**kw: Any) -> OutgoingEvent:
    base: dict[str, Any] = {
        "account": "mox",
        "event": "delivered",
        "queue_msg_id": 1,
        "from_id": "",
        "message_id": "<m1@localhost>",
        "subject": "hello one",
        "extra": {},
        "recipient": "other@example.org",
    }
    base.update(kw)
    return OutgoingEvent(**base)
