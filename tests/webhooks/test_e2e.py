"""End to end in a running localserve: the queue delivering to its own SMTP
listener (special recipients), SMTP submission with X-Mox-Extra headers,
incoming mail on port 1025, and the control-socket commands."""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trio

from core import ctl
from core.address import parse_address
from core.queue.add import AddRecipient, AddRequest
from core.queue.admin import QueueFilter
from core.runtime import Server
from tests.support.inproc import localserve_config_dir, running_server
from tests.webhooks.helpers import Receiver, account_edit, receiver


@dataclass
class Env:
    server: Server
    rec: Receiver

    @property
    def ctx(self) -> Any:
        assert self.server.ctx is not None
        return self.server.ctx

    @property
    def ip(self) -> str:
        return str(self.server.config.static.Listeners["local"].IPs[0])

    def out(self) -> list[Any]:
        return [r.json() for r in self.rec.for_path("/out")]

    async def wait_out(self, pred: Any, timeout: float = 15.0) -> dict[str, Any]:
        with trio.move_on_after(timeout):
            while True:
                for p in self.out():
                    if pred(p):
                        return dict(p)
                await trio.sleep(0.02)
        raise AssertionError(f"no matching outgoing webhook in {self.out()}")

    async def attempt_recorded(self, timeout: float = 15.0) -> ctl.CtlResult:
        """Poll ``queue webhook list -event delayed`` (bounded) until no
        attempt is in flight: the receiver has answered before the attempt's
        result commits. Returns the last listing."""
        with trio.fail_after(timeout):
            while True:
                listed = await self.cli("queue", "webhook", "list", "-event", "delayed")
                if "delivering..." not in listed.output:
                    return listed
                await trio.sleep(0.02)

    async def send(self, rcpt: str, extra: dict[str, str] | None = None, fromid: bool = True) -> int:
        """Queue like webapi Send: no submission-time check, fromid per recipient."""
        data = (f"From: mox@localhost\r\nTo: {rcpt}\r\nSubject: for {rcpt}\r\n"
                f"Message-Id: <{rcpt}@test>\r\n\r\nbody\r\n").encode()
        file_id = await self.ctx.store.files.store(data)
        entries = await self.ctx.queue.add(
            AddRequest(account="mox", mail_from=parse_address("mox@localhost"),
                       recipients=[AddRecipient(address=parse_address(rcpt))], file_id=file_id,
                       subject=f"for {rcpt}", message_id=f"<{rcpt}@test>", extra=extra,
                       use_fromid=fromid)
        )
        return int(entries[0].id)

    async def cli(self, *argv: str) -> ctl.CtlResult:
        path = ctl.socket_path(Path(self.server.config.data_dir))
        return await trio.to_thread.run_sync(lambda: ctl.call(path, list(argv)))


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"), in_url=rec.url("/in"), fromid_login=True)
        directory, _ = localserve_config_dir(tmp_path, edit_domains=edit)
        async with running_server(directory) as server:
            yield Env(server, rec)


async def test_queue_events_through_special_recipients(env: Env) -> None:
    ok = await env.send("someone@example.org", extra={"userid": "123"})
    delivered = await env.wait_out(lambda p: p["QueueMsgID"] == ok)
    assert delivered["Event"] == "delivered"
    assert (delivered["SMTPCode"], delivered["SMTPEnhancedCode"], delivered["Error"]) == (0, "", "")
    assert delivered["Extra"] == {"userid": "123"}
    assert len(delivered["FromID"]) == 22
    assert delivered["MessageID"] == "<someone@example.org@test>"

    perm = await env.send("userpermerror@example.org")
    failed = await env.wait_out(lambda p: p["QueueMsgID"] == perm)
    assert (failed["Event"], failed["SMTPCode"], failed["SMTPEnhancedCode"]) == ("failed", 550, "5.0.0")
    assert failed["Suppressing"] is True and failed["Extra"] == {} and not failed["DSN"]
    assert "550 5.0.0 failure with code 550" in failed["Error"]

    again = await env.send("userpermerror@example.org")
    suppressed = await env.wait_out(lambda p: p["QueueMsgID"] == again)
    assert suppressed["Event"] == "suppressed" and suppressed["SMTPCode"] == 0
    assert suppressed["Error"] == ("not delivering to recipient address userpermerror@example.org:"
                                   " address is on suppression list, permanent")

    temp = await env.send("usertemperror@example.org")
    delayed = await env.wait_out(lambda p: p["QueueMsgID"] == temp)
    assert (delayed["Event"], delayed["SMTPCode"], delayed["SMTPEnhancedCode"]) == ("delayed", 451, "4.0.0")
    assert await env.ctx.queue.drop(QueueFilter(IDs=[temp])) == 1
    canceled = await env.wait_out(lambda p: p["QueueMsgID"] == temp and p["Event"] == "canceled")
    assert canceled["Error"] == "delivery canceled by admin"

    temp2 = await env.send("other-temperror@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == temp2)
    assert await env.ctx.queue.fail(QueueFilter(IDs=[temp2])) == 1
    admin_failed = await env.wait_out(lambda p: p["QueueMsgID"] == temp2 and p["Event"] == "failed")
    assert (admin_failed["SMTPCode"], admin_failed["Error"]) == (0, "delivery canceled by admin")

    # Webhook records through the control socket.
    listed = await env.cli("queue", "webhook", "retired", "list", "-event", "suppressed")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0] == "retired webhooks:" and len(lines) == 2
    assert " success account:mox last " in lines[1] and lines[1].endswith(env.rec.url("/out"))
    hook_id = lines[1].split()[0]
    printed = await env.cli("queue", "webhook", "retired", "print", hook_id)
    record = json.loads(printed.output)
    assert list(record) == ["ID", "QueueMsgID", "FromID", "MessageID", "Subject", "Extra", "Account",
                            "URL", "Authorization", "IsIncoming", "OutgoingEvent", "Payload",
                            "Submitted", "SupersededByID", "Attempts", "Results", "Success",
                            "LastActivity", "KeepUntil"]
    assert record["OutgoingEvent"] == "suppressed" and record["Authorization"] is False
    assert json.loads(record["Payload"])["QueueMsgID"] == again
    assert printed.output.startswith("{\n\t\"ID\": ")
    missing = await env.cli("queue", "webhook", "print", "999")
    assert (missing.exit_code, missing.output) == (1, "getting webhook: not found\n")


async def test_extra_from_smtp_submission_headers(env: Env) -> None:
    data = (b"From: mox@localhost\r\nTo: x@example.org\r\nSubject: extra\r\n"
            b"X-Mox-Extra-order-ref: A-1\r\nMessage-Id: <extra1@test>\r\n\r\nbody\r\n")

    def submit() -> None:
        with smtplib.SMTP(env.ip, 1587, timeout=20) as s:
            s.login("mox+app@localhost", "moxmoxmox")
            s.sendmail("mox@localhost", ["x@example.org"], data)

    await trio.to_thread.run_sync(submit)
    p = await env.wait_out(lambda p: p["MessageID"] == "<extra1@test>")
    assert p["Event"] == "delivered" and p["Extra"] == {"Order-Ref": "A-1"}


async def test_webhook_commands_schedule_cancel(env: Env) -> None:
    env.rec.statuses["/out"] = 500
    temp = await env.send("usertemperror@example.org")
    await env.wait_out(lambda p: p["QueueMsgID"] == temp)
    listed = await env.attempt_recorded()
    lines = listed.output.splitlines()
    assert lines[0] == "webhooks:" and len(lines) == 2, listed.output
    assert 'error "http status \\"500 Internal Server Error\\", expected 2xx"' in lines[1]
    assert re.search(r" next (59s|1m0s|1m1s) ", lines[1]), lines[1]  # 1m ±1 %
    hook_id = lines[1].split()[0]
    printed = json.loads((await env.cli("queue", "webhook", "print", hook_id)).output)
    assert printed["Attempts"] == 1 and printed["OutgoingEvent"] == "delayed"
    assert printed["Results"][0]["Code"] == 500 and len(printed["Results"][0]["Response"]) == 512
    # Counted before rescheduling: the retry may arrive before the command's reply.
    n = len(env.rec.for_path("/out"))
    res = await env.cli("queue", "webhook", "schedule", "-ids", hook_id, "-now", "0")
    assert res.output == "1 webhook(s) rescheduled\n"
    await env.rec.wait(n + 1, "/out")
    # Cancel the queued hook, not the retry still in flight (whose outcome
    # would then be added after "canceled by admin", as mox does).
    await env.attempt_recorded()
    bad = await env.cli("queue", "webhook", "list", "-event", "bogus")
    assert bad.exit_code == 2
    cancel = await env.cli("queue", "webhook", "cancel", "-ids", hook_id)
    assert cancel.output == "1 webhook(s)s marked as canceled\n"
    retired = json.loads((await env.cli("queue", "webhook", "retired", "print", hook_id)).output)
    assert retired["Results"][-1]["Error"] == "canceled by admin" and retired["Success"] is False
    assert (await env.cli("queue", "webhook", "list")).output.endswith("(none)\n")
