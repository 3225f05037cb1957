"""A webapi call's request and answer, independent of the server path that carries them.

Method calls arrive through Quart (every webapi route) or straight from
ASGI (:mod:`plugins.webapi.fastpath`, the busy ``POST <path>v0/<Method>``);
both hand the call a :class:`RequestView` and write out its :class:`Answer`
the same way, so a client sees the same bytes either way.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from plugins.webapi.auth import HTTPAuthError
from plugins.webapi.errors import WebapiError
from plugins.webapi.jsoncodec import encode_bytes
from plugins.webapi.types import Error

if TYPE_CHECKING:
    from quart import Response

JSON_TYPE = "application/json; charset=utf-8"


class HeaderLookup(Protocol):
    """Request headers by case-insensitive name (Quart's ``request.headers`` is one)."""

    def get(self, key: str) -> str | None: ...


@dataclass
class RequestView:
    """What a method call reads of its HTTP request, whichever server path carried it."""

    scope: Mapping[str, Any]
    headers: HeaderLookup
    body: AsyncIterable[bytes]

    @classmethod
    def from_quart(cls) -> RequestView:
        # Quart is imported only by the calls that come through it: the
        # ASGI fast path must not load it.
        from quart import request

        return cls(request.scope, request.headers, request.body)


@dataclass
class Answer:
    """A method call's HTTP answer; ``headers`` precede Content-Type (as Quart orders them)."""

    status: int
    body: bytes
    content_type: str
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> Response:
        from quart import Response

        resp = Response(self.body, status=self.status, headers=self.headers)
        resp.headers["Content-Type"] = self.content_type
        return resp

    def asgi_headers(self, after: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
        """The header lines in :meth:`response`'s order (given, Content-Type,
        Content-Length), then ``after`` (what an after-request hook adds)."""
        lines = [(k.lower().encode(), v.encode()) for k, v in self.headers.items()]
        lines.append((b"content-type", self.content_type.encode()))
        lines.append((b"content-length", str(len(self.body)).encode()))
        lines.extend((k.lower().encode(), v.encode()) for k, v in after.items())
        return lines


def text_answer(status: int, body: str, headers: dict[str, str] | None = None) -> Answer:
    """A plain-text answer; the line ends with a newline, as Go's ``http.Error`` writes it."""
    return Answer(status, (body + "\n").encode(), "text/plain; charset=utf-8", headers or {})


def error_answer(err: WebapiError) -> Answer:
    return Answer(400, encode_bytes(Error(Code=err.code, Message=err.message)), JSON_TYPE)


def auth_error_answer(exc: HTTPAuthError) -> Answer:
    """A refused login as mox answers it: plain text, with a Basic challenge when asked for."""
    headers = {"WWW-Authenticate": "Basic realm=webapi"} if exc.challenge else {}
    return text_answer(exc.status, exc.body, headers)
