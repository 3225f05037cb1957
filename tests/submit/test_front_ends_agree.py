"""SMTP submission and webapi Send answer alike: both go through the core's one
submission path, so sender authorization and daily limits cannot drift apart.

Each case runs against a fresh server, once over SMTP (smtplib on the
submission port) and once over the webapi (httpx), and the wire answer of
each front end is mapped back to one verdict that must be the same.
"""

from __future__ import annotations

import json
import re
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import trio

from tests.support.inproc import localserve_config_dir, running_server

DOMAINS = """\
	team.example:
		LocalpartCatchallSeparators:
			- +
			- -
		Aliases:
			list:
				Addresses:
					- mox@team.example
				AllowMsgFrom: true
			closed:
				Addresses:
					- mox@team.example
			others:
				Addresses:
					- other@team.example
				AllowMsgFrom: true
	catch.example:
		LocalpartCatchallSeparator: +
	off.example:
		Disabled: true
"""

MOX_SETTINGS = "\t\tMaxOutgoingMessagesPerDay: 3\n\t\tMaxFirstTimeRecipientsPerDay: 2\n"
MOX_DESTINATIONS = "\t\t\tmox@team.example: nil\n\t\t\t@catch.example: nil\n\t\t\tmox@off.example: nil\n"
OTHER_ACCOUNT = "\tother:\n\t\tDomain: team.example\n\t\tDestinations:\n\t\t\tother@team.example: nil\n"


def edit_domains(text: str) -> str:
    text = text.replace("Domains:\n", "Domains:\n" + DOMAINS, 1)
    text = text.replace("\tmox:\n", "\tmox:\n" + MOX_SETTINGS, 1)
    text = text.replace("\t\t\tmox@localhost: nil\n", "\t\t\tmox@localhost: nil\n" + MOX_DESTINATIONS, 1)
    return text.replace("Accounts:\n", "Accounts:\n" + OTHER_ACCOUNT, 1)


ONE = ["r1@example.org"]
CASES = [
    # (message From, recipients, expected verdict)
    ("mox@localhost", ONE, "ok"),
    ("mox@team.example", ONE, "ok"),
    ("mox+tag@team.example", ONE, "ok"),  # first catchall separator
    ("MOX-tag@team.example", ONE, "ok"),  # second separator, case-insensitive
    ("other@team.example", ONE, "denied"),  # another account's address
    ("other+x@team.example", ONE, "denied"),
    ("list@team.example", ONE, "ok"),  # alias with AllowMsgFrom, mox a member
    ("list+x@team.example", ONE, "ok"),
    ("closed@team.example", ONE, "denied"),  # alias without AllowMsgFrom
    ("others@team.example", ONE, "denied"),  # alias mox is not a member of
    ("anyone@catch.example", ONE, "ok"),  # mox's catchall domain
    ("nobody@team.example", ONE, "denied"),  # no catchall there
    ("mox@off.example", ONE, "disabled"),
    ("mox@unknown.example", ONE, "denied"),
    ("mox@localhost", ["a@example.org", "b@example.org", "c@example.org", "d@example.org"], "message_limit"),
    ("mox@localhost", ["a@example.org", "b@example.org", "c@example.org"], "recipient_limit"),
]


def smtp_verdict(ip: str, from_: str, rcpts: list[str]) -> str:
    data = f"From: {from_}\r\nSubject: t\r\n\r\nhi\r\n".encode()
    with smtplib.SMTP(ip, 1587, timeout=20) as s:
        s.login("mox@localhost", "moxmoxmox")
        try:
            s.sendmail("mox@localhost", rcpts, data)
        except smtplib.SMTPDataError as exc:
            # Error replies end in " (<connection id>)".
            text = re.sub(r" \([^ ()]+\)$", "", exc.smtp_error.decode())
            if (exc.smtp_code, text) == (550, "5.7.1 message from address must belong to authenticated user"):
                return "denied"
            if (exc.smtp_code, text) == (451, "4.3.0 domain of message from header is temporarily disabled"):
                return "disabled"
            if exc.smtp_code == 451 and text.startswith("4.7.1 max number of messages (3) over past 24h"):
                return "message_limit"
            if exc.smtp_code == 451 and text.startswith("4.7.1 max number of new/first-time recipients (2)"):
                return "recipient_limit"
            return f"unexpected {exc.smtp_code} {text!r}"
    return "ok"


async def webapi_verdict(http: httpx.AsyncClient, ip: str, from_: str, rcpts: list[str]) -> str:
    req = {"From": [{"Address": from_}], "To": [{"Address": r} for r in rcpts], "Subject": "t", "Text": "hi"}
    r = await http.post(f"http://{ip}:1080/webapi/v0/Send", data={"request": json.dumps(req)},
                        auth=("mox@localhost", "moxmoxmox"))
    if r.status_code == 200:
        return "ok"
    body = r.json()
    known = {
        ("badFrom", "from-address not configured for account"): "denied",
        ("domainDisabled", "domain of from-address is temporarily disabled"): "disabled",
        ("messageLimitReached", "outgoing message rate limit reached"): "message_limit",
        ("recipientLimitReached", "outgoing new recipient rate limit reached"): "recipient_limit",
    }
    return known.get((body["Code"], body["Message"]), f"unexpected {r.status_code} {body}")


@pytest.fixture
async def server_ip(tmp_path: Path) -> AsyncIterator[tuple[str, httpx.AsyncClient]]:
    directory, ip = localserve_config_dir(tmp_path, edit_domains=edit_domains)
    async with running_server(directory), httpx.AsyncClient(timeout=20) as http:
        yield ip, http


@pytest.mark.parametrize("front_end", ["smtp", "webapi"])
@pytest.mark.parametrize(("from_", "rcpts", "expected"), CASES)
async def test_same_answer(server_ip: tuple[str, httpx.AsyncClient], front_end: str, from_: str,
                           rcpts: list[str], expected: str) -> None:
    ip, http = server_ip
    if front_end == "smtp":
        got = await trio.to_thread.run_sync(smtp_verdict, ip, from_, rcpts)
    else:
        got = await webapi_verdict(http, ip, from_, rcpts)
    assert got == expected
