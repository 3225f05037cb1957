"""The incoming webhook hook never reads a message file inside the store's write transaction.

The core parses the message before the transaction; a hook that opened the
file there would stall every writer of the store (group commit) for as
long as the read takes.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from core.events import IncomingDelivered
from tests.webhooks.helpers import Harness, account_edit, harness

EDIT = account_edit(in_url="http://127.0.0.1:9/in")


async def raise_incoming(h: Harness, tmp_path: Path, **kw: Any) -> Any:
    """Call the hook's work inside a store write for a message file that does not exist."""
    delivered = IncomingDelivered(
        account="mox", message_id=1, mailbox="Inbox",
        message_path=str(tmp_path / "no-such-message"), mail_from="a@example.org",
        rcpt_to="mox@localhost", **kw,
    )

    def tx(conn: sqlite3.Connection) -> object:
        return h.svc.on_incoming(conn, delivered)

    return await h.ctx.store.write(tx)


async def test_unparsed_message_is_not_read_in_the_transaction(tmp_path: Path) -> None:
    async with harness(tmp_path, EDIT, start=False) as h:
        # Opening the missing file inside the transaction would raise.
        assert await raise_incoming(h, tmp_path, meta={"MsgID": 1}) is None
        assert await h.rows("SELECT id FROM webhook_queue") == []


async def test_prepared_fields_queue_the_webhook(tmp_path: Path) -> None:
    async with harness(tmp_path, EDIT, start=False) as h:
        hook = await raise_incoming(
            h, tmp_path, meta={"MsgID": 1, "Automated": False},
            fields={"Subject": "hi", "MessageID": "<m@example.org>"},
        )
        assert hook is not None and hook.subject == "hi"
        assert len(await h.rows("SELECT id FROM webhook_queue")) == 1
