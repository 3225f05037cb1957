"""A typed Python client for the webapi (moxtrio's and mox's), sync and async.

Importable without a server or a config: it needs only httpx and the
request/response dataclasses of :mod:`plugins.webapi.types`, the same ones
the server decodes and encodes, so client and server cannot drift apart.

Behaviour mirrors mox's Go client: ``POST <base>/<Method>``
with the JSON in the urlencoded form field ``request`` (multipart when files
are uploaded), Basic auth; 200 decodes the result (raw bytes for
MessageRawGet/MessagePartGet), 400 raises :class:`WebapiError` with the
server's ``Code``, anything else :class:`HTTPError`.

Example::

    from plugins.webapi.client import Client
    from plugins.webapi.types import NameAddress, SendRequest

    c = Client("http://localhost:1080/webapi/v0/", "mox@localhost", "moxmoxmox")
    res = c.send(SendRequest(To=[NameAddress(Address="mox@localhost")], Subject="hi", Text="hello"))
    print(res.MessageID, [s.QueueMsgID for s in res.Submissions])

``AsyncClient`` has the same methods as coroutines (works under trio and
asyncio, through httpx).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from plugins.webapi.errors import WebapiError
from plugins.webapi.jsoncodec import decode_value, to_jsonable
from plugins.webapi.types import (
    METHODS,
    MessageDeleteRequest,
    MessageDeleteResult,
    MessageFlagsAddRequest,
    MessageFlagsAddResult,
    MessageFlagsRemoveRequest,
    MessageFlagsRemoveResult,
    MessageGetRequest,
    MessageGetResult,
    MessageMoveRequest,
    MessageMoveResult,
    MessagePartGetRequest,
    MessageRawGetRequest,
    SendRequest,
    SendResult,
    SuppressionAddRequest,
    SuppressionAddResult,
    SuppressionListRequest,
    SuppressionListResult,
    SuppressionPresentRequest,
    SuppressionPresentResult,
    SuppressionRemoveRequest,
    SuppressionRemoveResult,
)

__all__ = ["Client", "AsyncClient", "UploadFile", "WebapiError", "HTTPError"]

T = TypeVar("T")

#: As mox's client: at most 3 MiB of a JSON result, 10 KiB of an error.
MAX_RESULT = 3 << 20
MAX_ERROR = 10 << 10


class HTTPError(Exception):
    """A status other than 200/400 (e.g. 401, 429): ``status`` and the body's start."""

    def __init__(self, status: int, reason: str, body: str) -> None:
        super().__init__(f"http status {status} {reason}, expected 200 ok: {body[:512]}")
        self.status = status
        self.body = body


@dataclass
class UploadFile:
    """A file for Send's multipart form: ``kind`` is ``attached``, ``inline`` or ``alternative``."""

    filename: str
    data: bytes
    content_type: str = "application/octet-stream"
    kind: str = "attached"
    content_id: str = ""
    headers: dict[str, str] = field(default_factory=dict)


def _request_json(req: Any) -> str:
    return json.dumps(to_jsonable(req), ensure_ascii=False, separators=(",", ":"))


def _form(req: Any, files: list[UploadFile] | None) -> dict[str, Any]:
    body = _request_json(req)
    if not files:
        return {"data": {"request": body}}
    parts: list[tuple[str, Any]] = []
    for f in files:
        if f.kind not in ("attached", "inline", "alternative"):
            raise ValueError(f"unknown file kind {f.kind!r}")
        headers = dict(f.headers)
        if f.content_id:
            headers["Content-ID"] = f.content_id
        parts.append((f"{f.kind}file", (f.filename, f.data, f.content_type, headers)))
    return {"data": {"request": body}, "files": parts}


def _idempotency(key: str | None) -> dict[str, str] | None:
    """The ``Idempotency-Key`` header (a moxtrio extension; mox ignores it)."""
    return None if key is None else {"Idempotency-Key": key}


def _result(method: str, resp: httpx.Response) -> Any:
    if resp.status_code == 200:
        info = METHODS[method]
        if info.result is None:
            return resp.content
        if len(resp.content) > MAX_RESULT:
            raise HTTPError(200, "result too large", "")
        return decode_value(resp.json(), info.result, strict=False)
    if resp.status_code == 400:
        raw = resp.content[:MAX_ERROR]
        try:
            data = json.loads(raw)
            code, message = data["Code"], data["Message"]
        except (ValueError, KeyError, TypeError):
            raise HTTPError(400, resp.reason_phrase, raw.decode("utf-8", "replace")) from None
        raise WebapiError(str(code), str(message))
    raise HTTPError(resp.status_code, resp.reason_phrase, resp.text)


class _Base:
    def __init__(
        self, base_url: str, username: str | None = None, password: str | None = None,
        *, timeout: float = 60.0,
    ) -> None:
        self.base_url = base_url if base_url.endswith("/") else base_url + "/"
        self.auth: httpx.Auth | httpx._client.UseClientDefault = (
            httpx.BasicAuth(username, password or "")
            if username is not None
            else httpx.USE_CLIENT_DEFAULT
        )
        self.timeout = timeout


class Client(_Base):
    """Synchronous client; use as a context manager or call :meth:`close`."""

    def __init__(
        self, base_url: str, username: str | None = None, password: str | None = None,
        *, timeout: float = 60.0, http: httpx.Client | None = None,
    ) -> None:
        super().__init__(base_url, username, password, timeout=timeout)
        self.http = http or httpx.Client(timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def call(
        self, method: str, req: Any, files: list[UploadFile] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        """Call ``method`` with a request dataclass; the typed result (or bytes)."""
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        resp = self.http.post(
            self.base_url + method, auth=self.auth, headers=headers, **_form(req, files)
        )
        return _result(method, resp)

    def send(
        self, req: SendRequest, files: list[UploadFile] | None = None,
        *, idempotency_key: str | None = None,
    ) -> SendResult:
        """Send; with ``idempotency_key`` a repeat of this call (same key, same
        request, within 24 h) returns the first answer instead of sending again."""
        return self.call("Send", req, files, _idempotency(idempotency_key))  # type: ignore[no-any-return]

    def suppression_list(self) -> SuppressionListResult:
        return self.call("SuppressionList", SuppressionListRequest())  # type: ignore[no-any-return]

    def suppression_add(self, address: str, manual: bool = False, reason: str = "") -> SuppressionAddResult:
        return self.call("SuppressionAdd", SuppressionAddRequest(address, manual, reason))  # type: ignore[no-any-return]

    def suppression_remove(self, address: str) -> SuppressionRemoveResult:
        return self.call("SuppressionRemove", SuppressionRemoveRequest(address))  # type: ignore[no-any-return]

    def suppression_present(self, address: str) -> SuppressionPresentResult:
        return self.call("SuppressionPresent", SuppressionPresentRequest(address))  # type: ignore[no-any-return]

    def message_get(self, msg_id: int) -> MessageGetResult:
        return self.call("MessageGet", MessageGetRequest(msg_id))  # type: ignore[no-any-return]

    def message_raw_get(self, msg_id: int) -> bytes:
        return self.call("MessageRawGet", MessageRawGetRequest(msg_id))  # type: ignore[no-any-return]

    def message_part_get(self, msg_id: int, part_path: list[int]) -> bytes:
        return self.call("MessagePartGet", MessagePartGetRequest(msg_id, list(part_path)))  # type: ignore[no-any-return]

    def message_delete(self, msg_id: int) -> MessageDeleteResult:
        return self.call("MessageDelete", MessageDeleteRequest(msg_id))  # type: ignore[no-any-return]

    def message_flags_add(self, msg_id: int, flags: list[str]) -> MessageFlagsAddResult:
        return self.call("MessageFlagsAdd", MessageFlagsAddRequest(msg_id, list(flags)))  # type: ignore[no-any-return]

    def message_flags_remove(self, msg_id: int, flags: list[str]) -> MessageFlagsRemoveResult:
        return self.call("MessageFlagsRemove", MessageFlagsRemoveRequest(msg_id, list(flags)))  # type: ignore[no-any-return]

    def message_move(self, msg_id: int, dest_mailbox: str) -> MessageMoveResult:
        return self.call("MessageMove", MessageMoveRequest(msg_id, dest_mailbox))  # type: ignore[no-any-return]


class AsyncClient(_Base):
    """Asynchronous client (trio or asyncio); ``async with`` or :meth:`aclose`."""

    def __init__(
        self, base_url: str, username: str | None = None, password: str | None = None,
        *, timeout: float = 60.0, http: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(base_url, username, password, timeout=timeout)
        self.http = http or httpx.AsyncClient(timeout=timeout)

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def call(
        self, method: str, req: Any, files: list[UploadFile] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}")
        resp = await self.http.post(
            self.base_url + method, auth=self.auth, headers=headers, **_form(req, files)
        )
        return _result(method, resp)

    async def send(
        self, req: SendRequest, files: list[UploadFile] | None = None,
        *, idempotency_key: str | None = None,
    ) -> SendResult:
        """As :meth:`Client.send`."""
        return await self.call("Send", req, files, _idempotency(idempotency_key))  # type: ignore[no-any-return]

    async def suppression_list(self) -> SuppressionListResult:
        return await self.call("SuppressionList", SuppressionListRequest())  # type: ignore[no-any-return]

    async def suppression_add(
        self, address: str, manual: bool = False, reason: str = ""
    ) -> SuppressionAddResult:
        return await self.call("SuppressionAdd", SuppressionAddRequest(address, manual, reason))  # type: ignore[no-any-return]

    async def suppression_remove(self, address: str) -> SuppressionRemoveResult:
        return await self.call("SuppressionRemove", SuppressionRemoveRequest(address))  # type: ignore[no-any-return]

    async def suppression_present(self, address: str) -> SuppressionPresentResult:
        return await self.call("SuppressionPresent", SuppressionPresentRequest(address))  # type: ignore[no-any-return]

    async def message_get(self, msg_id: int) -> MessageGetResult:
        return await self.call("MessageGet", MessageGetRequest(msg_id))  # type: ignore[no-any-return]

    async def message_raw_get(self, msg_id: int) -> bytes:
        return await self.call("MessageRawGet", MessageRawGetRequest(msg_id))  # type: ignore[no-any-return]

    async def message_part_get(self, msg_id: int, part_path: list[int]) -> bytes:
        return await self.call("MessagePartGet", MessagePartGetRequest(msg_id, list(part_path)))  # type: ignore[no-any-return]

    async def message_delete(self, msg_id: int) -> MessageDeleteResult:
        return await self.call("MessageDelete", MessageDeleteRequest(msg_id))  # type: ignore[no-any-return]

    async def message_flags_add(self, msg_id: int, flags: list[str]) -> MessageFlagsAddResult:
        return await self.call("MessageFlagsAdd", MessageFlagsAddRequest(msg_id, list(flags)))  # type: ignore[no-any-return]

    async def message_flags_remove(self, msg_id: int, flags: list[str]) -> MessageFlagsRemoveResult:
        return await self.call("MessageFlagsRemove", MessageFlagsRemoveRequest(msg_id, list(flags)))  # type: ignore[no-any-return]

    async def message_move(self, msg_id: int, dest_mailbox: str) -> MessageMoveResult:
        return await self.call("MessageMove", MessageMoveRequest(msg_id, dest_mailbox))  # type: ignore[no-any-return]
