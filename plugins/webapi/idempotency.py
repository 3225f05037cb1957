"""Idempotent Send: the ``Idempotency-Key`` request header (a moxtrio extension).

As Stripe and Resend define it: a client that did not get an answer (the
connection broke, the server restarted) repeats its Send with the same key
and gets the first answer back instead of a second message.

* The key is remembered per account for :data:`TTL` (24 hours), together
  with a fingerprint of the request (the decoded request and the uploaded
  files) and the answer.
* The record is written **in the transaction that queues the message**
  (``AddRequest.in_transaction``): either both the queue entries and the
  record are committed, or neither is. A crash after the commit and before
  the answer leaves a record, so the retry is answered from it and nothing
  is queued twice.
* Same key, same request: the first answer again (the same ``MessageID`` and
  ``Submissions``; an error that happened after queueing, such as
  ``sentOverQuota``, again as that error).
* Same key, different request: 400 with code ``idempotencyKeyReused``.
* Two requests with one key at the same time: the second **waits** for the
  first to finish, then is answered from its record (or, when the first
  failed before anything was queued, runs itself). A server runs Send in one
  process, so a per-process lock per (account, key) is enough; the primary
  key on (account, key) would still refuse a second record.
* A request that fails before queueing (bad address, limit reached...)
  records nothing: the client may fix it and retry with the same key.
* Expired records are deleted when keyed requests come in, at most every
  :data:`PRUNE_INTERVAL`.

Without the header, Send is exactly mox's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import trio

from core.failpoints import failpoint
from core.store.models import from_db_time, to_db_time, utcnow
from core.store.sql import Connection
from moxtrio import Migration, QueueEntry, upsert
from plugins.webapi.errors import WebapiError, user
from plugins.webapi.jsoncodec import encode
from plugins.webapi.types import SendRequest, SendResult, Submission

HEADER = "Idempotency-Key"
TTL = timedelta(hours=24)
PRUNE_INTERVAL = timedelta(minutes=10)
MAX_KEY_LENGTH = 255
TABLE = "webapi_idempotency"
#: Crash point for the crash-consistency test: after queueing, before the answer.
FAILPOINT = "webapi-send-before-response"

MIGRATIONS = [
    Migration(
        owner="webapi-idempotency",
        version=1,
        sql=f"""
CREATE TABLE {TABLE} (
    account TEXT NOT NULL,
    key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    created INTEGER NOT NULL,
    response TEXT NOT NULL,
    PRIMARY KEY (account, key)
);
CREATE INDEX webapi_idempotency_created ON {TABLE} (created);
""",
    )
]


@dataclass
class Record:
    """A remembered answer: the result, or the error that followed queueing."""

    fingerprint: str
    created: datetime
    result: SendResult
    error: tuple[str, str] | None = None


@dataclass
class _State:
    """Per-server locks (tests run several servers in one process)."""

    locks: dict[tuple[str, str], tuple[trio.Lock, int]] = field(default_factory=dict)
    last_prune: datetime | None = None


def check_key(key: str) -> str:
    """The key as given; 1 to 255 printable ASCII characters."""
    if not key or len(key) > MAX_KEY_LENGTH or any(not (0x20 <= ord(c) < 0x7F) for c in key):
        raise user(
            f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters"
        )
    return key


def _upload_digest(u: Any) -> str:
    h = hashlib.sha256()
    data = getattr(u, "data", None)
    path = getattr(u, "path", None)
    if data:
        h.update(data)
    elif path:
        with open(Path(path), "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def fingerprint(req: SendRequest, uploads: list[Any]) -> str:
    """SHA-256 over the decoded request and every upload (field, name, headers, data).

    The decoded request, not the raw form: a client that re-encodes the same
    request (other field order, other whitespace) is still the same request.
    """
    h = hashlib.sha256(encode(req).encode("utf-8"))
    for u in uploads:
        part = [u.field, u.filename, u.content_type or "", u.content_id, _upload_digest(u)]
        h.update(b"\0" + json.dumps(part).encode("utf-8"))
    return h.hexdigest()


def _result_json(result: SendResult, error: tuple[str, str] | None) -> str:
    d: dict[str, Any] = {
        "MessageID": result.MessageID,
        "Submissions": [[s.Address, s.QueueMsgID, s.FromID] for s in result.Submissions],
    }
    if error is not None:
        d["Error"] = list(error)
    return json.dumps(d)


def _record_from_row(row: tuple[Any, ...]) -> Record:
    fp, created, response = row
    d = json.loads(response)
    result = SendResult(
        MessageID=d["MessageID"],
        Submissions=[Submission(Address=a, QueueMsgID=i, FromID=f) for a, i, f in d["Submissions"]],
    )
    err = d.get("Error")
    return Record(fp, from_db_time(created), result, tuple(err) if err else None)  # type: ignore[arg-type]


def lookup(conn: Connection, account: str, key: str, now: datetime) -> Record | None:
    """The unexpired record for (account, key)."""
    row = conn.execute(
        f"SELECT fingerprint, created, response FROM {TABLE}"
        " WHERE account = ? AND key = ? AND created >= ?",
        (account, key, to_db_time(now - TTL)),
    ).fetchone()
    return None if row is None else _record_from_row(row)


def insert_record(
    conn: Connection, account: str, key: str, fp: str, now: datetime, result: SendResult
) -> None:
    """Remember ``result`` (called inside the queue-add transaction).

    The upsert only ever replaces an expired record: a live one was answered
    from before we got here, under the per-key lock.
    """
    conn.execute(
        upsert(TABLE, ("account", "key", "fingerprint", "created", "response"), ("account", "key")),
        (account, key, fp, to_db_time(now), _result_json(result, None)),
    )


def record_error(
    conn: Connection, account: str, key: str, result: SendResult, error: tuple[str, str]
) -> None:
    """The message was queued but the answer is an error (e.g. sentOverQuota): replay that."""
    conn.execute(
        f"UPDATE {TABLE} SET response = ? WHERE account = ? AND key = ?",
        (_result_json(result, error), account, key),
    )


def prune(conn: Connection, now: datetime) -> int:
    """Delete expired records; returns how many."""
    cur = conn.execute(f"DELETE FROM {TABLE} WHERE created < ?", (to_db_time(now - TTL),))
    return cur.rowcount


def result_for(req: SendRequest, message_id: str, entries: list[QueueEntry]) -> SendResult:
    """The Send result for the inserted entries, as :func:`plugins.webapi.send.send` builds it."""
    given = [a.Address for a in (*req.To, *req.CC, *req.BCC)]
    return SendResult(
        MessageID=message_id,
        Submissions=[
            Submission(Address=a, QueueMsgID=e.id, FromID=e.from_id)
            for a, e in zip(given, entries, strict=True)
        ],
    )


def _state(ctx: Any) -> _State:
    st = ctx.service(_State)
    if st is None:
        st = _State()
        ctx.provide(_State, st)
    return st  # type: ignore[no-any-return]


async def _locked(st: _State, account: str, key: str) -> tuple[trio.Lock, tuple[str, str]]:
    k = (account, key)
    lock, n = st.locks.get(k, (trio.Lock(), 0))
    st.locks[k] = (lock, n + 1)
    await lock.acquire()
    return lock, k


def _unlock(st: _State, lock: trio.Lock, k: tuple[str, str]) -> None:
    lock.release()
    _, n = st.locks[k]
    if n <= 1:
        del st.locks[k]
    else:
        st.locks[k] = (lock, n - 1)


async def send_idempotent(call: Any, req: SendRequest) -> SendResult:
    """Send, remembering the answer under the request's Idempotency-Key (if any)."""
    from plugins.webapi import send

    raw = call.headers.get(HEADER) if call.headers is not None else None
    if raw is None:
        return await send.send(call, req)
    key = check_key(raw.strip())
    ctx = call.ctx
    account = call.login.account
    st = _state(ctx)
    fp = await trio.to_thread.run_sync(fingerprint, req, list(call.uploads))
    now = utcnow()
    if st.last_prune is None or now - st.last_prune >= PRUNE_INTERVAL:
        st.last_prune = now
        await ctx.store.write(lambda c: prune(c, now))

    lock, k = await _locked(st, account, key)
    try:
        rec = await ctx.store.read(lambda c: lookup(c, account, key, utcnow()))
        if rec is not None:
            if rec.fingerprint != fp:
                raise WebapiError(
                    "idempotencyKeyReused",
                    f"{HEADER} was used for a different request in the last {TTL.total_seconds() / 3600:g}h",
                )
            if rec.error is not None:
                raise WebapiError(*rec.error)
            return rec.result

        queued: list[SendResult] = []

        def in_tx(conn: Connection, entries: list[QueueEntry]) -> None:
            result = result_for(req, entries[0].message_id, entries)
            insert_record(conn, account, key, fp, utcnow(), result)
            queued.append(result)

        call.queue_tx = in_tx
        try:
            result = await send.send(call, req)
        except WebapiError as exc:
            if queued:
                err = (exc.code, exc.message)
                with trio.CancelScope(shield=True):
                    await ctx.store.write(lambda c: record_error(c, account, key, queued[0], err))
            raise
        failpoint(FAILPOINT)
        return result
    finally:
        _unlock(st, lock, k)


#: The header's OpenAPI description, added to Send's operation.
OPENAPI_PARAMETER: dict[str, Any] = {
    "name": HEADER,
    "in": "header",
    "required": False,
    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
    "description": (
        "moxtrio extension. A key of your choice (e.g. a UUID) that makes Send idempotent for "
        "24 hours per account: repeating the request with the same key returns the first "
        "answer (same MessageID and Submissions) without queueing again. The key is stored "
        "in the transaction that queues the message, so a retry after a crash or a lost "
        "answer never queues twice. The same key with a different request answers 400 with "
        "Code `idempotencyKeyReused`. A second request with a key that is still being "
        "processed waits for the first and gets its answer. A request that failed before "
        "anything was queued is not remembered and may be retried with the same key."
    ),
}
