"""The failed-login limiter in a whole server: the webapi cannot be used to
guess another account's password by interleaving good logins, and guesses
over SMTP and the webapi draw on one budget."""

from __future__ import annotations

import base64
import smtplib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from core.accounts import set_password
from core.runtime import Server
from plugins.webapi.auth import Authenticator
from tests.smtp_e2e.conftest import in_thread, ip_of
from tests.support.inproc import localserve_config_dir, running_server

SECOND_ACCOUNT = """\tother:
\t\tDomain: localhost
\t\tDestinations:
\t\t\tother@localhost: nil
"""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    directory, _ = localserve_config_dir(
        tmp_path, edit_domains=lambda t: t.replace("Accounts:\n", "Accounts:\n" + SECOND_ACCOUNT, 1)
    )
    async with running_server(directory) as srv:
        await set_password(srv.ctx, "other", "otherpass")  # type: ignore[arg-type]
        yield srv


async def webapi(server: Server, user: str, password: str) -> int:
    url = f"http://{ip_of(server)}:1080/webapi/v0/SuppressionList"
    async with httpx.AsyncClient(timeout=10) as http:
        r = await http.post(url, data={"request": "{}"}, auth=(user, password))
    return r.status_code


async def test_webapi_good_logins_do_not_forgive_guesses(server: Server) -> None:
    guesses = 0
    statuses: list[int] = []
    for round_ in range(6):
        for i in range(8):
            status = await webapi(server, "mox@localhost", f"guess{round_}-{i}")
            statuses.append(status)
            if status == 429:
                break
            assert status == 401
            guesses += 1
        if statuses[-1] == 429:
            break
        status = await webapi(server, "other@localhost", "otherpass")
        statuses.append(status)
        if status == 429:
            break
        assert status == 200
    assert statuses[-1] == 429
    assert guesses == 10


async def test_smtp_guesses_use_up_the_webapi_budget(server: Server) -> None:
    ip = ip_of(server)

    def smtp_guess(i: int) -> int:
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.ehlo()
            code, _ = s.docmd("AUTH", "PLAIN " + base64.b64encode(f"\0mox@localhost\0bad{i}".encode()).decode())
            return code

    for i in range(10):
        assert await in_thread(lambda i=i: smtp_guess(i)) == 535  # type: ignore[misc]
    assert await webapi(server, "mox@localhost", "moxmoxmox") == 429
    assert server.ctx.service(Authenticator).limiter is server.ctx.login_limiter
