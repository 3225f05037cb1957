"""The development server's queue delivers to its own listener: loopback peers pass the connection limits.

mox throttles connections at 300 a minute per address; a local queue
delivering every message over its own SMTP listener would hit that. The
localserve plugin marks the queue as delivering to our own listener, and
the listener then exempts loopback peers; a normal server with the same
settings does not (``tests/smtp_e2e/test_delivery_config.py``).
"""

from __future__ import annotations

import smtplib
from pathlib import Path

import pytest
import trio

from tests.support.inproc import localserve_config_dir, running_server


def _connect(ip: str) -> int:
    s = smtplib.SMTP(timeout=10)
    try:
        return s.connect(ip, 1025)[0]
    except smtplib.SMTPConnectError as exc:
        return exc.smtp_code
    finally:
        s.close()


@pytest.mark.parametrize(("localserve", "expected"), [(True, [220, 220, 220]), (False, [220, 220, 421])])
async def test_loopback_peers_pass_the_connection_rate_limit_only_in_localserve(
    tmp_path: Path, localserve: bool, expected: list[int]
) -> None:
    directory, ip = localserve_config_dir(tmp_path)
    (directory / "plugins").mkdir(exist_ok=True)
    (directory / "plugins" / "smtp.yaml").write_text("ConnectionsPerMinute: [2, 10, 10]\n")
    async with running_server(directory, localserve=localserve):
        codes = [await trio.to_thread.run_sync(_connect, ip) for _ in range(3)]
    assert codes == expected
