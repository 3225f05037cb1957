"""Log lines and metrics of webhook attempts and failed logins, and
PackageLogLevels, against real servers over loopback."""

from __future__ import annotations

import io
import json
import re
import smtplib
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio

from core import mlog
from tests.ops.helpers import AUTH, send
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.procs import run_cli, running, unique_loopback_ip
from tests.webhooks.helpers import account_edit, receiver


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    buf = io.StringIO()
    mlog.configure("info", stream=buf)
    yield buf
    mlog.configure("info")


async def test_webhook_attempt_line_hides_url_credentials_and_counts(
    tmp_path: Path, log_text: io.StringIO
) -> None:
    async with receiver() as rec:
        url = f"http://hookuser:hooksecret@127.0.0.1:{rec.port}/hook"
        config_dir, ip = localserve_config_dir(tmp_path, edit_domains=account_edit(out_url=url))
        async with running_server(config_dir):
            async with httpx.AsyncClient() as http:
                before = (await http.get(f"http://{ip}:1081/metrics")).text
                body = json.dumps({"To": [{"Address": "hooked@localhost"}], "Text": "x"})
                r = await http.post(f"http://{ip}:1080/webapi/v0/Send", data={"request": body}, auth=AUTH)
                assert r.status_code == 200
                await rec.wait(1)
                with trio.fail_after(10):
                    while 'm="webhook delivered"' not in log_text.getvalue():
                        await trio.sleep(0.05)
                after = (await http.get(f"http://{ip}:1081/metrics")).text
    line = next(ln for ln in log_text.getvalue().splitlines() if 'm="webhook delivered"' in ln)
    assert "pkg=webhooks hookid=" in line and "account=mox event=delivered" in line
    assert f"url=http://127.0.0.1:{rec.port}/hook status=200" in line
    assert "hooksecret" not in log_text.getvalue() and "hookuser" not in line

    def count(text: str) -> float:
        for ln in text.splitlines():
            if ln.startswith('mox_webhook_results_total{code="200"}'):
                return float(ln.rsplit(" ", 1)[1])
        return 0.0

    assert count(after) == count(before) + 1


async def test_smtp_auth_failure_line(tmp_path: Path, log_text: io.StringIO) -> None:
    config_dir, ip = localserve_config_dir(tmp_path)
    async with running_server(config_dir):

        def login() -> None:
            with smtplib.SMTP(ip, 1587, timeout=30) as c, pytest.raises(smtplib.SMTPAuthenticationError):
                c.login("mox@localhost", "not-the-password")

        await trio.to_thread.run_sync(login)
    line = next(ln for ln in log_text.getvalue().splitlines() if 'm="authentication failed"' in ln)
    assert re.search(r"protocol=submission mechanism=(cram-md5|plain|login|scram-sha-\S+) remoteip=127\.", line), line
    assert "user=mox@localhost" in line and "not-the-password" not in log_text.getvalue()


@pytest.mark.slow
def test_package_log_levels_quiet_one_package_and_open_a_library(tmp_path: Path) -> None:
    ip = unique_loopback_ip()
    directory = tmp_path / "ls"
    assert run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly").returncode == 0
    conf = directory / "mox.conf"
    text = conf.read_text()
    assert "LogLevel: traceauth\n" in text
    conf.write_text(text.replace("LogLevel: traceauth\n", "LogLevel: info\nPackageLogLevels:\n\twebapi: error\n\thpack: debug\n"))
    with running(["localserve", "-dir", str(directory)], directory, ip) as server:
        assert send(ip, "quiet@localhost").status_code == 200
        server.wait_for('m="delivered" pkg=queue')
        out = server.output()
        assert 'm="webapi request"' not in out  # webapi at error
        assert "RC: " not in out  # no transcripts at info
    conf.write_text(text.replace("LogLevel: traceauth\n", "LogLevel: info\nPackageLogLevels:\n\tqueue: loud\n"))
    check = run_cli("config", "test", "-config", str(conf))
    assert check.returncode == 1
    assert 'PackageLogLevels queue: unknown log level "loud"' in check.stderr
