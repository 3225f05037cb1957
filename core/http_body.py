"""Request bodies read only as fast as the handler consumes them.

Quart reads every body message from the server as soon as it arrives and
appends it to the request's buffer, whether or not the handler keeps up.
A handler that streams a large upload to disk (the webapi's multipart
forms) falls behind on a busy machine, and the buffer then grows towards
the whole upload, copied again on each read: memory depends on load.

Here, once a body is being iterated, no further message is taken from the
server while :data:`BODY_BUFFER_MAX` bytes wait unread; hypercorn then
stops reading the socket and TCP slows the client down. A body awaited as
a whole (``await request.get_data()``) is read as before: its handler
wants all of it at once.
"""

from __future__ import annotations

from typing import Any

import trio
from quart_trio import QuartTrio
from quart_trio.asgi import TrioASGIHTTPConnection
from quart_trio.wrappers.request import TrioBody, TrioRequest

#: Unread body bytes at which reading from the connection pauses.
BODY_BUFFER_MAX = 1 << 20


class BoundedBody(TrioBody):
    """A body that tells the connection when the handler took its data."""

    def __init__(self, expected_content_length: int | None, max_content_length: int | None) -> None:
        super().__init__(expected_content_length, max_content_length)
        self._streaming = False
        self._taken = trio.Event()

    def __aiter__(self) -> BoundedBody:
        self._streaming = True
        return self

    async def __anext__(self) -> bytes:
        try:
            return await super().__anext__()
        finally:
            self._taken.set()

    async def wait_for_room(self) -> None:
        """Return once the handler may receive more (see the module docstring)."""
        while (
            self._streaming
            and self._must_raise is None
            and len(self._data) >= BODY_BUFFER_MAX
        ):
            self._taken = trio.Event()
            await self._taken.wait()


class BoundedRequest(TrioRequest):
    body_class = BoundedBody


class BoundedConnection(TrioASGIHTTPConnection):
    """Takes body messages from the server only when the body has room."""

    async def handle_messages(  # type: ignore[override]
        self, nursery: trio.Nursery, request: Any, receive: Any
    ) -> None:
        body = request.body
        while True:
            if isinstance(body, BoundedBody):
                await body.wait_for_room()
            message = await receive()
            if message["type"] == "http.request":
                body.append(message.get("body", b""))
                if not message.get("more_body", False):
                    body.set_complete()
            elif message["type"] == "http.disconnect":
                break
        nursery.cancel_scope.cancel()


class BoundedQuartTrio(QuartTrio):
    """A quart-trio app whose request bodies are read with backpressure."""

    request_class = BoundedRequest
    asgi_http_class = BoundedConnection
