"""One webhook POST over httpx (which runs natively on trio).

The queue owns retries, so httpx gets no retry policy. Every request is
bounded twice: httpx's connect/read/write/pool timeouts and an overall
trio deadline (mox: 60 s per attempt), so a receiver that accepts the
connection and then never answers costs one slot for at most that long.
"""

from __future__ import annotations

import time
from datetime import datetime

import httpx
import trio

from core.version import VERSION
from plugins.webhooks.destination import (
    DestinationPolicy,
    DestinationRefused,
    Lookup,
    redact_url,
    split_credentials,
)
from plugins.webhooks.queue_ops import AttemptOutcome
from plugins.webhooks.records import Hook
from plugins.webhooks.redelivery import HEADER as REDELIVERY_HEADER
from plugins.webhooks.signing import HEADER as SIGNATURE_HEADER
from plugins.webhooks.signing import header_value
from plugins.webhooks.transport import CheckedBackend, CheckedTransport

#: mox sends ``mox/<version> (webhook)``; receivers that look for the "mox/"
#: prefix keep working, and the version names us.
USER_AGENT = f"mox/moxtrio-{VERSION} (webhook)"
#: Bytes of the response body kept in the attempt result.
RESPONSE_LIMIT = 512


def make_client(
    timeout: float, max_connections: int, policy: DestinationPolicy, lookup: Lookup
) -> httpx.AsyncClient:
    """The shared client: bounded pool, idle connections dropped after 5 s (as mox),
    redirects not followed, connections only to addresses ``policy`` allows."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_connections,
        keepalive_expiry=5.0,
    )
    return httpx.AsyncClient(
        timeout=httpx.Timeout(timeout, connect=min(30.0, timeout)),
        transport=CheckedTransport(CheckedBackend(policy, lookup), limits),
        follow_redirects=False,
        trust_env=False,
    )


def describe(exc: BaseException) -> str:
    """The whole exception chain in one line (TLS errors often have empty messages)."""
    parts: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        text = str(cur) or type(cur).__name__
        if not parts or text not in parts[-1]:
            parts.append(text)
        cur = cur.__cause__ or cur.__context__
    return ": ".join(parts)


def request_headers(
    hook: Hook, attempt: int, secret: str, body: bytes, basic: str = ""
) -> dict[str, str]:
    """mox's headers plus our optional signature.

    ``basic``: Authorization from the URL's userinfo, used (as Go's client
    does) only when the hook has no Authorization of its own.
    """
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": USER_AGENT,
        "X-Mox-Webhook-ID": str(hook.id),
        "X-Mox-Webhook-Attempt": str(attempt),
    }
    if hook.authorization or basic:
        headers["Authorization"] = hook.authorization or basic
    if hook.redelivery_of:
        headers[REDELIVERY_HEADER] = str(hook.redelivery_of)
    if secret:
        headers[SIGNATURE_HEADER] = header_value(secret, int(time.time()), body)
    return headers


async def post_hook(
    client: httpx.AsyncClient,
    hook: Hook,
    *,
    time_limit: float,
    secret: str = "",
    start: datetime | None = None,
) -> AttemptOutcome:
    """POST the hook's payload once; any 2xx is success (docs/differences.md, item 2)."""
    body = hook.payload.encode("utf-8")
    # httpx never sees the userinfo, so neither its log lines nor our errors hold it.
    url, basic = split_credentials(hook.url)
    shown = redact_url(hook.url)
    headers = request_headers(hook, hook.attempts, secret, body, basic)
    t0 = time.monotonic()
    code = 0
    status = ""
    response = b""
    try:
        with trio.fail_after(time_limit):
            async with client.stream("POST", url, content=body, headers=headers) as resp:
                code = resp.status_code
                status = f"{resp.status_code} {resp.reason_phrase}".strip()
                async for chunk in resp.aiter_bytes():
                    response += chunk
                    if len(response) >= RESPONSE_LIMIT:
                        break
    except trio.TooSlowError:
        err = f'http transact: Post "{shown}": no response within {time_limit:g}s'
        return _outcome(False, code, err, response, t0, start)
    except DestinationRefused as exc:
        return _outcome(False, 0, f'http transact: Post "{shown}": {exc}', b"", t0, start)
    except (httpx.HTTPError, OSError, ValueError) as exc:
        if code:
            # Status received, the body broke off: the status decides.
            pass
        else:
            err = f'http transact: Post "{shown}": {describe(exc)}'
            return _outcome(False, 0, err, response, t0, start)
    if 200 <= code < 300:
        return _outcome(True, code, "", response, t0, start)
    return _outcome(False, code, f'http status "{status}", expected 2xx', response, t0, start)


def _outcome(
    ok: bool, code: int, err: str, response: bytes, t0: float, start: datetime | None
) -> AttemptOutcome:
    text = response[:RESPONSE_LIMIT].decode("utf-8", "replace")
    return AttemptOutcome(
        success=ok,
        code=code,
        error=err,
        response=text,
        duration_ns=int((time.monotonic() - t0) * 1e9),
        start=start,
    )
