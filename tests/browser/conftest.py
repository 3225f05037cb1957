"""Real-browser fixtures: Debian's chromium driven by Playwright, against a
``moxtrio localserve`` child process on a loopback address of its own.

Playwright's own browser download is not used: the system chromium is
launched by path. Every page records console errors and uncaught exceptions;
each test ends by asserting there were none.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.support.procs import ServerProcess, localserve

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
#: Screenshots go to docs/img (shown in the README) with MOXTRIO_SCREENSHOTS=1,
#: else to a temporary directory, so a test run leaves the work tree unchanged.
DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with localserve(tmp_path_factory.mktemp("browser")) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def img_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("MOXTRIO_SCREENSHOTS") == "1":
        return DOCS_IMG
    return tmp_path_factory.mktemp("screenshots")


@dataclass
class UI:
    """A fresh browser context (own cookies and storage) on the test server."""

    page: Page
    server: ServerProcess
    img: Path
    errors: list[str] = field(default_factory=list)

    @property
    def base(self) -> str:
        return f"http://{self.server.ip}:1080"

    def goto(self, path: str) -> None:
        self.page.goto(self.base + path)

    def expect_message(self, text: str | re.Pattern[str]) -> None:
        """The page's message area shows ``text`` (waits: a page may still be reloading)."""
        expect(self.page.locator("#message")).to_have_text(text)

    def shot(self, name: str) -> None:
        self.img.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(self.img / f"{name}.png"), full_page=True)


@pytest.fixture
def ui(browser: Browser, server: ServerProcess, img_dir: Path) -> Iterator[UI]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15000)
    u = UI(page, server, img_dir)
    page.on("console", lambda m: u.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: u.errors.append(f"page error: {e}"))
    # Destructive actions ask first; the tests answer yes (and record the question).
    page.on("dialog", lambda d: (u.errors.append(f"unexpected dialog {d.type}") if d.type != "confirm" else None,
                                 d.accept()))
    yield u
    context.close()
    assert u.errors == []


def webapi(server: ServerProcess, method: str, request: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"http://{server.ip}:1080/webapi/v0/{method}", data={"request": json.dumps(request)},
                      auth=("mox@localhost", "moxmoxmox"), timeout=20)


def send(server: ServerProcess, rcpt: str, subject: str = "hello") -> int:
    r = webapi(server, "Send", {"To": [{"Address": rcpt}], "Subject": subject, "Text": "hi\n"})
    assert r.status_code == 200, r.text
    return int(r.json()["Submissions"][0]["QueueMsgID"])


def sherpa(server: ServerProcess, base: str, *login: str) -> Any:
    """A logged-in sherpa caller for set-up steps that are not under test."""
    http = httpx.Client(timeout=20)
    url = f"http://{server.ip}:1080{base}api/"

    def call(fn: str, *params: Any, csrf: str = "") -> Any:
        r = http.post(url + fn, json={"params": list(params)}, headers={"x-mox-csrf": csrf} if csrf else {})
        d = r.json()
        assert "error" not in d, d
        return d["result"]

    token = call("LoginPrep")
    csrf = call("Login", token, *login)
    return lambda fn, *params: call(fn, *params, csrf=csrf)


def wait_until(pred: Any, what: str, timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@dataclass
class Receiver:
    """A webhook endpoint on loopback answering ``status``; records request bodies
    and, per path, the ``X-Mox-Webhook-Redelivery-Of`` header of redeliveries."""

    status: int = 200
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    redelivery_of: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def on(self, path: str) -> list[bytes]:
        return [b for p, b in self.bodies if p == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:  # noqa: N802 - stdlib name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            rec.bodies.append((self.path, body))
            if self.headers.get("X-Mox-Webhook-Redelivery-Of"):
                rec.redelivery_of.append((self.path, self.headers["X-Mox-Webhook-Redelivery-Of"]))
            status = 500 if self.path.startswith("/fail") else rec.status
            text = b"ok" if status == 200 else b"server trouble"
            self.send_response(status)
            self.send_header("Content-Length", str(len(text)))
            self.end_headers()
            self.wfile.write(text)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    httpd.daemon_threads = True
    rec.port = httpd.server_address[1]
    t = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    t.start()
    yield rec
    httpd.shutdown()
    httpd.server_close()
