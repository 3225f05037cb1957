"""Request bodies over a real hypercorn listener: a handler that reads its
body slower than the client sends gets it in bounded pieces (the server
stops reading instead of buffering the upload), and a body awaited whole
still arrives whole."""

from __future__ import annotations

import hashlib
from types import SimpleNamespace
from typing import Any

import httpx
import quart
import trio

from core.http import HTTPBinding, serve_binding
from core.http_body import BODY_BUFFER_MAX
from core.plugin_api import CoreParts, HTTPService
from tests.support.procs import unique_loopback_ip

SIZE = 24 * 1024 * 1024
PIECE = bytes(range(256)) * 256  # 64 KiB


def chunks() -> Any:
    for _ in range(SIZE // len(PIECE)):
        yield PIECE


def blueprint(ctx: Any, path: str) -> quart.Blueprint:
    bp = quart.Blueprint("bodytest", __name__, url_prefix=path.rstrip("/"))

    @bp.post("/stream")
    async def stream() -> dict[str, Any]:
        largest = total = 0
        digest = hashlib.sha256()
        async for chunk in quart.request.body:
            largest = max(largest, len(chunk))
            total += len(chunk)
            digest.update(chunk)
            await trio.sleep(0.02)  # a handler slower than loopback
        return {"largest": largest, "total": total, "sha256": digest.hexdigest()}

    @bp.post("/whole")
    async def whole() -> dict[str, Any]:
        data = await quart.request.get_data()
        assert isinstance(data, bytes)
        return {"total": len(data), "sha256": hashlib.sha256(data).hexdigest()}

    return bp


async def test_streamed_body_is_read_with_backpressure_and_whole_body_still_works() -> None:
    service = HTTPService(name="bodytest", config_keys=(), default_path="/", blueprint=blueprint)
    binding = HTTPBinding(ip=unique_loopback_ip(), port=0, tls=False, listener="test")
    binding.mounts.append((service, "/"))
    shutdown = trio.Event()
    want = hashlib.sha256(b"".join(chunks())).hexdigest()

    def post(path: str) -> dict[str, Any]:
        with httpx.Client(timeout=60) as client:
            r = client.post(f"{base}{path}", content=chunks())
            assert r.status_code == 200, r.text
            out: dict[str, Any] = r.json()
            return out

    async with trio.open_nursery() as nursery:
        # The HTTP layer takes only its settings (http.yaml: none here, so the
        # defaults) and its connection counter from the server's context.
        ctx: Any = SimpleNamespace(core=CoreParts(), plugin_settings=lambda name: {})
        [address] = await nursery.start(serve_binding, ctx, binding, shutdown)
        base = address if address.startswith("http") else f"http://{address}"
        with trio.fail_after(120):
            streamed = await trio.to_thread.run_sync(post, "/stream")
            whole = await trio.to_thread.run_sync(post, "/whole")
        shutdown.set()
    assert (streamed["total"], streamed["sha256"]) == (SIZE, want)
    # At most the pause threshold plus one read from the socket.
    assert streamed["largest"] <= BODY_BUFFER_MAX + 64 * 1024, streamed["largest"]
    assert (whole["total"], whole["sha256"]) == (SIZE, want)
