"""``/metrics`` on localserve's metrics port and the log lines of a Send,
over real HTTP to a real ``moxtrio localserve`` process."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from tests.ops.helpers import send
from tests.support.procs import localserve, run_cli

pytestmark = pytest.mark.slow

NAMES = (
    "mox_queue_delivery_duration_seconds",
    "mox_queue_hold",
    "mox_smtpserver_submission_total",
    "mox_smtpserver_delivery_total",
    "mox_webapi_duration_seconds",
    "mox_webapi_results_total",
    "mox_webapi_submission_total",
    "mox_webhook_request_duration_seconds",
    "mox_webhook_results_total",
    "moxtrio_queue_messages",
    "moxtrio_webhook_queue_messages",
    "moxtrio_suppressions",
    "process_resident_memory_bytes",
)


def _scrape(ip: str) -> dict[str, float]:
    r = httpx.get(f"http://{ip}:1081/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    values: dict[str, float] = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            values[key] = float(value)
    # HELP lines name every family, also those without samples yet.
    for name in re.findall(r"^# HELP (\S+)", r.text, re.M):
        values.setdefault(name, 0.0)
    return values


def _total(values: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in values.items() if k.startswith(prefix))


def _wait_retired(server_dir: Path, n: int) -> str:
    deadline = time.monotonic() + 30
    out = ""
    while time.monotonic() < deadline:
        out = run_cli("-config", str(server_dir / "mox.conf"), "queue", "retired", "list").stdout
        if out.count(" from:") >= n:
            return out
        time.sleep(0.2)
    raise AssertionError(out)


def test_metrics_move_after_a_send_and_a_delivery(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        before = _scrape(server.ip)
        for name in NAMES:
            assert any(k == name or k.startswith(name + "{") or k.startswith(name.removesuffix("_total"))
                       for k in before), name
        assert send(server.ip, "ok@localhost").status_code == 200
        assert send(server.ip, "user550@localhost").status_code == 200
        _wait_retired(server.directory, 2)
        after = _scrape(server.ip)
        assert after['mox_webapi_results_total{method="Send",result="ok"}'] == \
            before.get('mox_webapi_results_total{method="Send",result="ok"}', 0) + 2
        assert after['mox_webapi_submission_total{result="ok"}'] >= 2
        assert _total(after, "mox_webapi_duration_seconds_count") >= 2
        assert after[
            'mox_queue_delivery_duration_seconds_count{attempt="1",result="ok",tlsmode="opportunistic",transport=""}'
        ] >= 1
        assert after[
            'mox_queue_delivery_duration_seconds_count{attempt="1",result="permerror",tlsmode="opportunistic",transport=""}'
        ] >= 1
        assert after['mox_smtpserver_delivery_total{reason="",result="delivered"}'] >= 1
        assert after['mox_smtpserver_delivery_total{reason="5.0.0",result="reject"}'] >= 1
        assert after["moxtrio_queue_messages"] == 0
        # The permanent failure put the recipient on the suppression list.
        assert after['moxtrio_suppressions{account="mox"}'] == 1


def test_log_lines_of_a_delivered_and_a_failed_send(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        assert send(server.ip, "ok@localhost").status_code == 200
        assert send(server.ip, "user550@localhost").status_code == 200
        retired = _wait_retired(server.directory, 2)
        # The reply is said once, not twice.
        assert retired.count("permanent: 550 5.0.0") == 1, retired
        server.wait_for('m="delivery attempt failed"')
        out = server.output()
        delivered = server.wait_for('m="delivered" pkg=queue')
        assert re.search(r"qid=1 account=mox from=mox@localhost to=ok@localhost attempt=1 "
                         r"mxhost=localhost .*duration=\d+\.\d+s result=ok code=250", delivered), delivered
        failed = server.wait_for('m="delivery attempt failed"')
        assert "to=user550@localhost" in failed and "result=permerror code=550" in failed
        assert failed.count("permanent: 550") == 1
        assert re.search(r'm="webapi request" pkg=webapi method=Send account=mox status=200 result=ok '
                         r"duration=\d+\.\d+s remoteip=127\.", out)
        # localserve's LogLevel traceauth does not let third-party debug output through.
        assert "pkg=httpcore" not in out and "pkg=httpx" not in out
        for line in out.splitlines():
            if line.startswith("l="):
                assert re.match(r'l=(error|warn|info|debug|trace|traceauth|tracedata) m="', line), line


def test_webapi_auth_failure_is_logged(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        r = httpx.post(f"http://{server.ip}:1080/webapi/v0/Send", data={"request": "{}"},
                       auth=("mox@localhost", "wrong"), timeout=10)
        assert r.status_code == 401
        line = server.wait_for('m="authentication failed"')
        assert "protocol=webapi mechanism=httpbasic remoteip=127." in line
        assert "user=mox@localhost" in line and "wrong" not in line
        badauth = server.wait_for('m="webapi request"')
        assert "status=401 result=badauth" in badauth
        values = _scrape(server.ip)
        assert values['mox_webapi_results_total{method="Send",result="badauth"}'] == 1


def test_smtp_transcript_at_traceauth_hides_data_not_credentials(tmp_path: Path) -> None:
    import smtplib

    with localserve(tmp_path) as server:
        with smtplib.SMTP(server.ip, 1587, timeout=30) as c:
            c.user, c.password = "mox@localhost", "moxmoxmox"
            c.ehlo()
            c.auth("PLAIN", c.auth_plain)  # with an initial response on the AUTH line
            c.sendmail("mox@localhost", ["t@example.org"], b"From: mox@localhost\r\nSubject: secret-subject\r\n\r\nsecret body\r\n")
        server.wait_for('m="submission"')
        out = server.output()
        low = out.lower()
        assert 'm="lw: 220 ' in low and 'm="rc: ehlo ' in low
        # localserve's level is traceauth: the login shows, the message data does not.
        assert 'm="rc: auth plain ' in low and 'm="rc: auth plain ***"' not in low
        assert 'm="RD: ..." pkg=smtp size=' in out
        assert "secret body" not in out and "secret-subject" not in out
