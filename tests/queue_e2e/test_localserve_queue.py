"""The queue in a running localserve: special recipients, DSNs in the
sender's Inbox, hold rules and queue commands through the control socket."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.address import parse_address
from core.message.dsn import parse_dsn
from core.queue.add import AddRecipient, AddRequest
from core.runtime import Server
from tests.smtp_e2e.conftest import in_thread, ip_of, submit, wait_rows
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.procs import run_cli


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    directory, _ = localserve_config_dir(tmp_path)
    # Short simulated read timeout for the "timeout" recipients.
    settings = {"localserve": {"read_timeout": 0.5}}
    async with running_server(directory, settings=settings) as srv:
        yield srv


def message(rcpt: str) -> bytes:
    return f"From: mox@localhost\r\nTo: {rcpt}\r\nSubject: for {rcpt}\r\n\r\nbody\r\n".encode()


async def send(server: Server, rcpt: str) -> None:
    """Queue a message the way webapi Send does: no special-localpart check at
    submission (SMTP submission refuses these at DATA), so the
    failure happens when the queue delivers to the local listener."""
    ctx = server.ctx
    assert ctx is not None
    file_id = await ctx.store.files.store(message(rcpt))
    await ctx.queue.add(
        AddRequest(account="mox", mail_from=parse_address("mox@localhost"),
                   recipients=[AddRecipient(address=parse_address(rcpt))], file_id=file_id,
                   subject=f"for {rcpt}", message_id=f"<{rcpt}@test>")
    )


async def test_smtp_submission_refuses_special_recipients_at_data(server: Server) -> None:
    import smtplib

    with pytest.raises(smtplib.SMTPDataError) as info:
        await in_thread(lambda: submit(ip_of(server), ["userpermerror@example.org"], message("x")))
    assert info.value.smtp_code == 550


@pytest.mark.parametrize(
    ("rcpt", "code", "secode"),
    [("userpermerror@example.org", 550, "0.0"), ("rcpttopermerror@example.org", 550, "0.0"),
     ("user554@example.org", 554, "0.0")],
)
async def test_permanent_special_recipients_fail_with_dsn(server: Server, rcpt: str, code: int, secode: str) -> None:
    await send(server, rcpt)
    rows = await wait_rows(server, "select success, results from retired")
    success, results = rows[0]
    last = json.loads(results)[-1]
    assert success == 0
    assert (last["code"], last["secode"]) == (code, secode)
    dsn_rows = await wait_rows(server, "select file_id, msg_prefix from messages where is_dsn = 1 or subject like '%failed%'")
    file_id, prefix = dsn_rows[0]
    dsn = parse_dsn(bytes(prefix) + server.ctx.store.files.path(file_id).read_bytes())  # type: ignore[union-attr]
    assert dsn is not None
    assert dsn.recipients[0].action == "failed"


@pytest.mark.parametrize(("rcpt", "code"), [("usertemperror@example.org", 451), ("user421@example.org", 421)])
async def test_temporary_special_recipients_are_retried_later(server: Server, rcpt: str, code: int) -> None:
    await send(server, rcpt)
    rows = await wait_rows(server, "select attempts, results, next_attempt, last_attempt from queue where attempts >= 1 and results like '%\"code\": " + str(code) + "%'")
    attempts, results, next_attempt, last_attempt = rows[0]
    assert attempts == 1
    # First backoff is 7m30s (±5 s) after the attempt.
    delay = (next_attempt - last_attempt) / 1e6
    assert 440 <= delay <= 460


async def test_timeout_recipient_is_temporary_with_code_zero(server: Server) -> None:
    await send(server, "usertimeout@slow.example")
    rows = await wait_rows(server, "select results from queue where results like '%i/o timeout%'", timeout=20)
    last = json.loads(rows[0][0])[-1]
    assert last["code"] == 0 and "i/o timeout" in last["error"]


async def test_hold_rules_and_queue_commands_through_the_control_socket(server: Server) -> None:
    conf = str(Path(server.config.dir) / "mox.conf")
    add = await in_thread(lambda: run_cli("-config", conf, "queue", "holdrules", "add", "-recipientdom", "held.example"))
    assert add.returncode == 0, add.stdout + add.stderr
    listed = await in_thread(lambda: run_cli("-config", conf, "queue", "holdrules", "list"))
    assert "held.example" in listed.stdout
    await in_thread(lambda: submit(ip_of(server), ["a@held.example"], message("a@held.example")))
    await in_thread(lambda: submit(ip_of(server), ["b@free.example"], message("b@free.example")))
    await wait_rows(server, "select 1 from retired where recipient_domain = 'free.example'")
    held = await wait_rows(server, "select id, hold from queue where recipient_domain = 'held.example'")
    assert held[0][1] == 1
    queue_list = await in_thread(lambda: run_cli("-config", conf, "queue", "list"))
    assert "a@held.example" in queue_list.stdout
    # Removing the rule leaves the entry held; unhold releases it.
    assert (await in_thread(lambda: run_cli("-config", conf, "queue", "holdrules", "remove", "1"))).returncode == 0
    assert (await wait_rows(server, "select hold from queue where recipient_domain = 'held.example'"))[0][0] == 1
    unhold = await in_thread(lambda: run_cli("-config", conf, "queue", "unhold", "-to", "held.example"))
    assert unhold.returncode == 0, unhold.stdout + unhold.stderr
    await wait_rows(server, "select 1 from retired where recipient_domain = 'held.example' and success = 1")
