"""Typed rows of the core tables, and their conversion to and from SQLite.

Code outside :mod:`core.store` works with these dataclasses instead of raw
``sqlite3.Row`` objects so a column rename is one edit here, and so times are
always timezone-aware UTC ``datetime`` values (SQLite stores them as integer
microseconds since the Unix epoch: sortable, comparable in SQL, no time-zone
parsing on the hot path of the queue scheduler).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from core.store.sql import Row

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def to_db_time(dt: datetime) -> int:
    """A datetime as integer microseconds since the epoch.

    Naive datetimes are refused: a local time silently stored as UTC would
    shift every queue schedule by the machine's offset.
    """
    if dt.tzinfo is None:
        raise ValueError("naive datetime: use an aware datetime (UTC)")
    return (dt - EPOCH) // _US


def from_db_time(value: int) -> datetime:
    """Inverse of :func:`to_db_time`."""
    return EPOCH + timedelta(microseconds=value)


def opt_to_db_time(dt: datetime | None) -> int | None:
    return None if dt is None else to_db_time(dt)


def opt_from_db_time(value: int | None) -> datetime | None:
    return None if value is None else from_db_time(value)


def utcnow() -> datetime:
    """Now, as an aware UTC datetime (the only kind the store accepts)."""
    return datetime.now(UTC)


# --------------------------------------------------------------------------
# flags
# --------------------------------------------------------------------------

#: System flags in the order mox reports them, with the
#: ``messages`` column that stores each one.
SYSTEM_FLAGS: dict[str, str] = {
    "$forwarded": "flag_forwarded",
    "$junk": "flag_junk",
    "$mdnsent": "flag_mdnsent",
    "$notjunk": "flag_notjunk",
    "$phishing": "flag_phishing",
    "\\answered": "flag_answered",
    "\\deleted": "flag_deleted",
    "\\draft": "flag_draft",
    "\\flagged": "flag_flagged",
    "\\seen": "flag_seen",
}


# --------------------------------------------------------------------------
# accounts and mailboxes
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScramCredentials:
    """SCRAM-SHA-256 verifier (RFC 5802/7677): enough to check a login, never the password."""

    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


@dataclass(frozen=True)
class CramMD5Secret:
    """MD5 states after HMAC-MD5's inner and outer key blocks (what mox stores for CRAM-MD5)."""

    ipad: bytes
    opad: bytes


@dataclass(frozen=True)
class LoginSecrets:
    """All derived secrets of an account; None where not (yet) derived.

    Accounts whose password was set before SCRAM-SHA-1 and CRAM-MD5 were
    supported have only ``scram_sha256`` until the password is set again.
    """

    scram_sha256: ScramCredentials | None
    scram_sha1: ScramCredentials | None = None
    cram_md5: CramMD5Secret | None = None


@dataclass(frozen=True)
class Account:
    name: str
    created: datetime
    scram: ScramCredentials | None

    @classmethod
    def from_row(cls, row: Row) -> Account:
        scram = None
        if row["scram_salt"] is not None:
            scram = ScramCredentials(
                salt=bytes(row["scram_salt"]),
                iterations=int(row["scram_iterations"]),
                stored_key=bytes(row["scram_stored_key"]),
                server_key=bytes(row["scram_server_key"]),
            )
        return cls(name=row["name"], created=from_db_time(row["created"]), scram=scram)


@dataclass(frozen=True)
class Mailbox:
    id: int
    account: str
    name: str
    #: ``\Sent``, ``\Archive``, ``\Trash``, ``\Drafts``, ``\Junk`` or "".
    special_use: str

    @classmethod
    def from_row(cls, row: Row) -> Mailbox:
        return cls(
            id=row["id"], account=row["account"], name=row["name"], special_use=row["special_use"]
        )


# --------------------------------------------------------------------------
# messages
# --------------------------------------------------------------------------


@dataclass(kw_only=True)
class MessageMeta:
    """What the SMTP server knew when it stored a message.

    Everything defaults to empty/false: a Sent copy saved by the webapi has
    no SMTP envelope, and mox reports those fields as empty (observed).
    """

    mail_from: str = ""
    mail_from_localpart: str = ""
    mail_from_domain: str = ""
    mail_from_validated: bool = False
    msg_from: str = ""
    msg_from_validated: bool = False
    rcpt_to_localpart: str = ""
    rcpt_to_domain: str = ""
    remote_ip: str = ""
    message_id: str = ""
    subject: str = ""
    is_dsn: bool = False
    dkim_domains: list[str] = field(default_factory=list)
    msg_prefix: bytes = b""


@dataclass(kw_only=True)
class Message(MessageMeta):
    """A message in an account's mailbox."""

    id: int
    account: str
    mailbox_id: int
    mailbox_name: str
    file_id: str
    size: int
    received: datetime
    #: Set system flags, lowercase (``\\seen``, ``$junk``), any order.
    flags: frozenset[str] = frozenset()
    #: Lowercase keywords, sorted.
    keywords: list[str] = field(default_factory=list)

    @property
    def rcpt_to(self) -> str:
        """``localpart@domain`` of the SMTP recipient, or ""."""
        if not self.rcpt_to_localpart and not self.rcpt_to_domain:
            return ""
        return f"{self.rcpt_to_localpart}@{self.rcpt_to_domain}"

    def flag_list(self) -> list[str]:
        """Flags as MessageGet reports them: system flags in mox's order, then keywords."""
        return [f for f in SYSTEM_FLAGS if f in self.flags] + sorted(self.keywords)

    @classmethod
    def from_row(cls, row: Row) -> Message:
        keys = row.keys()
        return cls(
            id=row["id"],
            account=row["account"],
            mailbox_id=row["mailbox_id"],
            mailbox_name=row["mailbox_name"] if "mailbox_name" in keys else "",
            file_id=row["file_id"] or "",
            size=row["size"],
            received=from_db_time(row["received"]),
            flags=frozenset(f for f, col in SYSTEM_FLAGS.items() if row[col]),
            keywords=json.loads(row["keywords"]),
            mail_from=row["mail_from"],
            mail_from_localpart=row["mail_from_localpart"],
            mail_from_domain=row["mail_from_domain"],
            mail_from_validated=bool(row["mail_from_validated"]),
            msg_from=row["msg_from"],
            msg_from_validated=bool(row["msg_from_validated"]),
            rcpt_to_localpart=row["rcpt_to_localpart"],
            rcpt_to_domain=row["rcpt_to_domain"],
            remote_ip=row["remote_ip"],
            message_id=row["message_id"],
            subject=row["subject"],
            is_dsn=bool(row["is_dsn"]),
            dkim_domains=json.loads(row["dkim_domains"]),
            msg_prefix=bytes(row["msg_prefix"]),
        )


# --------------------------------------------------------------------------
# outgoing queue
# --------------------------------------------------------------------------


@dataclass(kw_only=True)
class MsgResult:
    """One delivery attempt (or admin action) of a queue entry.

    Beyond mox's fields: ``mx_host``, the host the attempt dialed ("" when
    none was, e.g. an admin action or a DNS failure), and ``tls``, whether
    the SMTP session ran over TLS. Both are stored as extra keys in the
    results JSON (written only when set, so rows from before read as "no
    host, no TLS"); mox's JSON shapes leave them out.
    """

    start: datetime
    duration_ns: int = 0
    success: bool = False
    code: int = 0
    secode: str = ""
    error: str = ""
    mx_host: str = ""
    tls: bool = False

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "start": to_db_time(self.start),
            "duration": self.duration_ns,
            "success": self.success,
            "code": self.code,
            "secode": self.secode,
            "error": self.error,
        }
        if self.mx_host:
            d["mxhost"] = self.mx_host
        if self.tls:
            d["tls"] = True
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MsgResult:
        return cls(
            start=from_db_time(d["start"]),
            duration_ns=d.get("duration", 0),
            success=d.get("success", False),
            code=d.get("code", 0),
            secode=d.get("secode", ""),
            error=d.get("error", ""),
            mx_host=d.get("mxhost", ""),
            tls=bool(d.get("tls", False)),
        )


def _bool_or_none(v: int | None) -> bool | None:
    return None if v is None else bool(v)


@functools.cache
def _queue_entry_fields() -> tuple[str, ...]:
    """:class:`QueueEntry`'s field names in order (rows are built for every queued message)."""
    return tuple(f.name for f in fields(QueueEntry))


@dataclass(kw_only=True)
class QueueEntry:
    """One recipient of an outgoing message.

    ``id`` is 0 until inserted. ``file_id`` names the message file in
    :class:`core.store.files.MessageFiles`; recipients of one message share
    it, and the file is removed when the last row referencing it goes.
    Domains: ``*_domain`` is the ASCII name (or the bare IP for an IP
    literal), ``*_domain_str`` the Unicode name or ``[ip]``.
    """

    id: int = 0
    base_id: int = 0
    queued: datetime
    hold: bool = False
    sender_account: str
    sender_localpart: str
    sender_domain: str
    sender_domain_str: str
    from_id: str = ""
    recipient_localpart: str
    recipient_domain: str
    recipient_domain_str: str
    attempts: int = 0
    max_attempts: int = 0
    dialed_ips: dict[str, list[str]] | None = None
    next_attempt: datetime
    last_attempt: datetime | None = None
    results: list[MsgResult] = field(default_factory=list)
    has8bit: bool = False
    smtputf8: bool = False
    is_dmarc_report: bool = False
    is_tls_report: bool = False
    is_dsn: bool = False
    size: int = 0
    message_id: str = ""
    msg_prefix: bytes = b""
    subject: str = ""
    dsn_utf8: bytes = b""
    transport: str = ""
    require_tls: bool | None = None
    future_release_request: str = ""
    extra: dict[str, str] | None = None
    file_id: str = ""
    last_activity: datetime | None = None

    @property
    def sender_address(self) -> str:
        return f"{self.sender_localpart}@{self.sender_domain_str}"

    @property
    def recipient(self) -> str:
        return f"{self.recipient_localpart}@{self.recipient_domain_str}"

    def to_row(self) -> dict[str, Any]:
        """Column values for INSERT/UPDATE (``id`` included; drop it to let SQLite assign)."""
        row: dict[str, Any] = {name: getattr(self, name) for name in _queue_entry_fields()}
        for name in ("queued", "next_attempt"):
            row[name] = to_db_time(row[name])
        for name in ("last_attempt", "last_activity"):
            row[name] = opt_to_db_time(row[name])
        # A new entry has no results yet: json.dumps([]) without the encoder.
        row["results"] = json.dumps([r.to_json() for r in self.results]) if self.results else "[]"
        row["dialed_ips"] = None if self.dialed_ips is None else json.dumps(self.dialed_ips)
        row["extra"] = None if self.extra is None else json.dumps(self.extra)
        for name in ("hold", "has8bit", "smtputf8", "is_dmarc_report", "is_tls_report", "is_dsn"):
            row[name] = int(row[name])
        row["require_tls"] = None if self.require_tls is None else int(self.require_tls)
        return row

    @staticmethod
    def _kwargs_from_row(row: Row) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        for f in fields(QueueEntry):
            kw[f.name] = row[f.name]
        for name in ("queued", "next_attempt"):
            kw[name] = from_db_time(kw[name])
        for name in ("last_attempt", "last_activity"):
            kw[name] = opt_from_db_time(kw[name])
        kw["results"] = [MsgResult.from_json(r) for r in json.loads(kw["results"])]
        kw["dialed_ips"] = None if kw["dialed_ips"] is None else json.loads(kw["dialed_ips"])
        kw["extra"] = None if kw["extra"] is None else json.loads(kw["extra"])
        for name in ("hold", "has8bit", "smtputf8", "is_dmarc_report", "is_tls_report", "is_dsn"):
            kw[name] = bool(kw[name])
        kw["require_tls"] = _bool_or_none(kw["require_tls"])
        kw["msg_prefix"] = bytes(kw["msg_prefix"])
        kw["dsn_utf8"] = bytes(kw["dsn_utf8"])
        kw["file_id"] = kw["file_id"] or ""
        return kw

    @classmethod
    def from_row(cls, row: Row) -> QueueEntry:
        return cls(**cls._kwargs_from_row(row))


@dataclass(kw_only=True)
class RetiredEntry(QueueEntry):
    """A queue entry after it left the queue, same ID as it had there.

    mox does not keep NextAttempt, Hold, MsgPrefix, DSNUTF8 or the file: the
    columns exist (so a retire is one ``INSERT … SELECT``) but
    :func:`core.store.queue_rows.retire` clears them.
    """

    recipient_address: str = ""
    success: bool = False
    keep_until: datetime

    def to_row(self) -> dict[str, Any]:
        row = super().to_row()
        row["recipient_address"] = self.recipient_address
        row["success"] = int(self.success)
        row["keep_until"] = to_db_time(self.keep_until)
        return row

    @classmethod
    def from_row(cls, row: Row) -> RetiredEntry:
        kw = cls._kwargs_from_row(row)
        return cls(
            **kw,
            recipient_address=row["recipient_address"],
            success=bool(row["success"]),
            keep_until=from_db_time(row["keep_until"]),
        )


QUEUE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(QueueEntry))
RETIRED_COLUMNS: tuple[str, ...] = QUEUE_COLUMNS + ("recipient_address", "success", "keep_until")
