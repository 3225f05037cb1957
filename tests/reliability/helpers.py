"""Shared parts of the reliability tests: a `moxtrio localserve` child with
outgoing webhooks to a receiver in the test, clients for webapi Send and
SMTP submission, and readers of the child's database after it stopped."""

from __future__ import annotations

import json
import smtplib
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.inproc import localserve_config_dir
from tests.webhooks.helpers import account_edit

AUTH = ("mox@localhost", "moxmoxmox")


def webhook_localserve(tmp_path: Path, hook_url: str) -> tuple[Path, str]:
    """A localserve config dir whose account ``mox`` sends outgoing webhooks to ``hook_url``."""
    return localserve_config_dir(tmp_path, edit_domains=account_edit(out_url=hook_url))


def webapi_send(
    http: httpx.Client, ip: str, rcpt: str | list[str], message_id: str, subject: str = ""
) -> httpx.Response:
    rcpts = [rcpt] if isinstance(rcpt, str) else rcpt
    req = {
        "To": [{"Address": r} for r in rcpts],
        "Subject": subject or message_id,
        "Text": "reliability test\n",
    }
    return http.post(f"http://{ip}:1080/webapi/v0/Send", data={"request": json.dumps(req)}, auth=AUTH)


def smtp_submit(s: smtplib.SMTP, rcpt: str, message_id: str) -> None:
    data = (
        f"From: mox@localhost\r\nTo: {rcpt}\r\nSubject: {message_id}\r\n"
        f"Message-Id: <{message_id}>\r\n\r\nreliability test\r\n"
    ).encode()
    s.sendmail("mox@localhost", [rcpt], data)


@dataclass
class DBState:
    """What the stopped server's database says."""

    unsettled: list[tuple[int, str]]  # queue entries whose last result is an attempt in progress
    queued: int
    delivered_ids: Counter[str]  # Subject (the test's message id) -> copies stored in mailboxes
    outgoing_events: list[tuple[int, str]]  # (queue_msg_id, event) of every webhook row

    def events(self, name: str) -> list[int]:
        return [q for q, e in self.outgoing_events if e == name]


def read_db(directory: Path) -> DBState:
    db = sqlite3.connect(directory / "moxtrio.db")
    try:
        unsettled = []
        for qid, results in db.execute("SELECT id, results FROM queue"):
            r = json.loads(results)
            if r and not r[-1]["success"] and r[-1]["error"] in (
                "delivering...",
                "delivered, result not yet recorded",
            ):
                unsettled.append((qid, r[-1]["error"]))
        queued = db.execute("SELECT COUNT(*) FROM queue").fetchone()[0]
        delivered = Counter(
            str(m)
            for (m,) in db.execute(
                "SELECT m.subject FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id"
                " WHERE m.is_dsn = 0 AND b.name != 'Sent'"
            )
        )
        events = [
            (int(q), str(e))
            for t in ("webhook_queue", "webhook_retired")
            for q, e in db.execute(f"SELECT queue_msg_id, outgoing_event FROM {t} WHERE is_incoming = 0")
        ]
    finally:
        db.close()
    return DBState(unsettled, queued, delivered, events)
