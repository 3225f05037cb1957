"""Hook records (queued and retired), their rows and mox's JSON for them.

Only row mechanics and the JSON shapes live here; when hooks are created,
superseded, attempted and retired is :mod:`plugins.webhooks.queue_ops`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.queue.timefmt import format_rfc3339_nano
from core.store.models import from_db_time, to_db_time
from core.store.sql import Connection, Row
from moxtrio import upsert
from plugins.webhooks.gojson import sorted_map

#: The error a result carries while its attempt is in progress.
DELIVERING = "delivering..."


#: ``authorization`` is a reserved word in PostgreSQL: quoted in statements
#: (both engines accept the quoted name; rows still read it unquoted).
AUTHORIZATION_COLUMN = '"authorization"'


@dataclass(kw_only=True)
class HookResult:
    """One delivery attempt (or admin/incoming action) of a hook."""

    start: datetime
    duration_ns: int = 0
    url: str = ""
    success: bool = False
    code: int = 0
    error: str = ""
    response: str = ""

    def to_db(self) -> dict[str, Any]:
        return {
            "start": to_db_time(self.start),
            "duration": self.duration_ns,
            "url": self.url,
            "success": self.success,
            "code": self.code,
            "error": self.error,
            "response": self.response,
        }

    @classmethod
    def from_db(cls, d: dict[str, Any]) -> HookResult:
        return cls(
            start=from_db_time(d["start"]),
            duration_ns=d.get("duration", 0),
            url=d.get("url", ""),
            success=d.get("success", False),
            code=d.get("code", 0),
            error=d.get("error", ""),
            response=d.get("response", ""),
        )

    def to_json(self) -> dict[str, Any]:
        """mox's HookResult JSON."""
        return {
            "Start": format_rfc3339_nano(self.start),
            "Duration": self.duration_ns,
            "URL": self.url,
            "Success": self.success,
            "Code": self.code,
            "Error": self.error,
            "Response": self.response,
        }


def _results_db(results: list[HookResult]) -> str:
    return json.dumps([r.to_db() for r in results])


def _results_from_db(text: str) -> list[HookResult]:
    return [HookResult.from_db(d) for d in json.loads(text)]


def _extra_db(extra: dict[str, str] | None) -> str | None:
    return None if extra is None else json.dumps(extra)


def _extra_from_db(text: str | None) -> dict[str, str] | None:
    return None if text is None else json.loads(text)


@dataclass(kw_only=True)
class Hook:
    """A webhook in the queue (mox's ``queue.Hook``). ``id`` is 0 until inserted."""

    id: int = 0
    queue_msg_id: int = 0
    from_id: str = ""
    message_id: str = ""
    subject: str = ""
    extra: dict[str, str] | None = None
    account: str
    url: str
    authorization: str = ""
    is_incoming: bool = False
    outgoing_event: str = ""
    payload: str
    submitted: datetime
    attempts: int = 0
    next_attempt: datetime
    results: list[HookResult] = field(default_factory=list)
    #: ID of the retired webhook this one redelivers (0: none). Not a column
    #: of this table: filled from ``webhook_redelivery`` when an attempt starts.
    redelivery_of: int = 0

    @property
    def event_name(self) -> str:
        """``incoming`` or the outgoing event, as the ``-event`` filter names them."""
        return "incoming" if self.is_incoming else self.outgoing_event

    def last_result(self) -> HookResult | None:
        return self.results[-1] if self.results else None

    def to_row(self) -> dict[str, Any]:
        return {
            "queue_msg_id": self.queue_msg_id,
            "from_id": self.from_id,
            "message_id": self.message_id,
            "subject": self.subject,
            "extra": _extra_db(self.extra),
            "account": self.account,
            "url": self.url,
            AUTHORIZATION_COLUMN: self.authorization,
            "is_incoming": int(self.is_incoming),
            "outgoing_event": self.outgoing_event,
            "payload": self.payload,
            "submitted": to_db_time(self.submitted),
            "attempts": self.attempts,
            "next_attempt": to_db_time(self.next_attempt),
            "results": _results_db(self.results),
        }

    @classmethod
    def from_row(cls, row: Row) -> Hook:
        return cls(
            id=row["id"],
            queue_msg_id=row["queue_msg_id"],
            from_id=row["from_id"],
            message_id=row["message_id"],
            subject=row["subject"],
            extra=_extra_from_db(row["extra"]),
            account=row["account"],
            url=row["url"],
            authorization=row["authorization"],
            is_incoming=bool(row["is_incoming"]),
            outgoing_event=row["outgoing_event"],
            payload=row["payload"],
            submitted=from_db_time(row["submitted"]),
            attempts=row["attempts"],
            next_attempt=from_db_time(row["next_attempt"]),
            results=_results_from_db(row["results"]),
        )

    def to_json(self) -> dict[str, Any]:
        """mox's ``Hook`` JSON (``queue webhook print``)."""
        return {
            "ID": self.id,
            "QueueMsgID": self.queue_msg_id,
            "FromID": self.from_id,
            "MessageID": self.message_id,
            "Subject": self.subject,
            "Extra": sorted_map(self.extra),
            "Account": self.account,
            "URL": self.url,
            "Authorization": self.authorization,
            "IsIncoming": self.is_incoming,
            "OutgoingEvent": self.outgoing_event,
            "Payload": self.payload,
            "Submitted": format_rfc3339_nano(self.submitted),
            "Attempts": self.attempts,
            "NextAttempt": format_rfc3339_nano(self.next_attempt),
            "Results": [r.to_json() for r in self.results] or None,
        }


@dataclass(kw_only=True)
class RetiredHook:
    """A hook after it left the queue (mox's ``queue.HookRetired``), same ID.

    ``authorization`` only records whether one was set: the secret value is
    not kept once the hook is done.
    """

    id: int
    queue_msg_id: int = 0
    from_id: str = ""
    message_id: str = ""
    subject: str = ""
    extra: dict[str, str] | None = None
    account: str
    url: str
    authorization: bool = False
    is_incoming: bool = False
    outgoing_event: str = ""
    payload: str
    submitted: datetime
    superseded_by_id: int = 0
    attempts: int = 0
    results: list[HookResult] = field(default_factory=list)
    success: bool = False
    last_activity: datetime
    keep_until: datetime

    @property
    def event_name(self) -> str:
        return "incoming" if self.is_incoming else self.outgoing_event

    def last_result(self) -> HookResult | None:
        return self.results[-1] if self.results else None

    @classmethod
    def from_hook(
        cls,
        hook: Hook,
        *,
        success: bool,
        last_activity: datetime,
        keep_until: datetime,
        superseded_by_id: int = 0,
    ) -> RetiredHook:
        return cls(
            id=hook.id,
            queue_msg_id=hook.queue_msg_id,
            from_id=hook.from_id,
            message_id=hook.message_id,
            subject=hook.subject,
            extra=hook.extra,
            account=hook.account,
            url=hook.url,
            authorization=hook.authorization != "",
            is_incoming=hook.is_incoming,
            outgoing_event=hook.outgoing_event,
            payload=hook.payload,
            submitted=hook.submitted,
            superseded_by_id=superseded_by_id,
            attempts=hook.attempts,
            results=list(hook.results),
            success=success,
            last_activity=last_activity,
            keep_until=keep_until,
        )

    def to_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "queue_msg_id": self.queue_msg_id,
            "from_id": self.from_id,
            "message_id": self.message_id,
            "subject": self.subject,
            "extra": _extra_db(self.extra),
            "account": self.account,
            "url": self.url,
            AUTHORIZATION_COLUMN: int(self.authorization),
            "is_incoming": int(self.is_incoming),
            "outgoing_event": self.outgoing_event,
            "payload": self.payload,
            "submitted": to_db_time(self.submitted),
            "superseded_by_id": self.superseded_by_id,
            "attempts": self.attempts,
            "results": _results_db(self.results),
            "success": int(self.success),
            "last_activity": to_db_time(self.last_activity),
            "keep_until": to_db_time(self.keep_until),
        }

    @classmethod
    def from_row(cls, row: Row) -> RetiredHook:
        return cls(
            id=row["id"],
            queue_msg_id=row["queue_msg_id"],
            from_id=row["from_id"],
            message_id=row["message_id"],
            subject=row["subject"],
            extra=_extra_from_db(row["extra"]),
            account=row["account"],
            url=row["url"],
            authorization=bool(row["authorization"]),
            is_incoming=bool(row["is_incoming"]),
            outgoing_event=row["outgoing_event"],
            payload=row["payload"],
            submitted=from_db_time(row["submitted"]),
            superseded_by_id=row["superseded_by_id"],
            attempts=row["attempts"],
            results=_results_from_db(row["results"]),
            success=bool(row["success"]),
            last_activity=from_db_time(row["last_activity"]),
            keep_until=from_db_time(row["keep_until"]),
        )

    def to_json(self) -> dict[str, Any]:
        """mox's ``HookRetired`` JSON (``queue webhook retired print``)."""
        return {
            "ID": self.id,
            "QueueMsgID": self.queue_msg_id,
            "FromID": self.from_id,
            "MessageID": self.message_id,
            "Subject": self.subject,
            "Extra": sorted_map(self.extra),
            "Account": self.account,
            "URL": self.url,
            "Authorization": self.authorization,
            "IsIncoming": self.is_incoming,
            "OutgoingEvent": self.outgoing_event,
            "Payload": self.payload,
            "Submitted": format_rfc3339_nano(self.submitted),
            "SupersededByID": self.superseded_by_id,
            "Attempts": self.attempts,
            "Results": [r.to_json() for r in self.results] or None,
            "Success": self.success,
            "LastActivity": format_rfc3339_nano(self.last_activity),
            "KeepUntil": format_rfc3339_nano(self.keep_until),
        }


# -- row helpers (synchronous, caller's transaction) ---------------------------



def insert_hook(conn: Connection, hook: Hook) -> int:
    row = hook.to_row()
    cur = conn.execute(
        f"INSERT INTO webhook_queue ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})"
        " RETURNING id",
        tuple(row.values()),
    )
    hook.id = int(cur.fetchone()[0])
    return hook.id


def get_hook(conn: Connection, hook_id: int) -> Hook | None:
    row = conn.execute("SELECT * FROM webhook_queue WHERE id = ?", (hook_id,)).fetchone()
    return None if row is None else Hook.from_row(row)


def save_hook(conn: Connection, hook: Hook) -> None:
    row = hook.to_row()
    sets = ", ".join(f"{k} = ?" for k in row)
    conn.execute(f"UPDATE webhook_queue SET {sets} WHERE id = ?", (*row.values(), hook.id))


def delete_hook(conn: Connection, hook_id: int) -> None:
    conn.execute("DELETE FROM webhook_queue WHERE id = ?", (hook_id,))


def insert_retired(conn: Connection, hook: RetiredHook) -> None:
    row = hook.to_row()
    conn.execute(upsert("webhook_retired", list(row), ["id"]), tuple(row.values()))


def get_retired(conn: Connection, hook_id: int) -> RetiredHook | None:
    row = conn.execute("SELECT * FROM webhook_retired WHERE id = ?", (hook_id,)).fetchone()
    return None if row is None else RetiredHook.from_row(row)


def save_retired_results(conn: Connection, hook: RetiredHook) -> None:
    conn.execute(
        "UPDATE webhook_retired SET results = ?, last_activity = ?, success = ? WHERE id = ?",
        (_results_db(hook.results), to_db_time(hook.last_activity), int(hook.success), hook.id),
    )
