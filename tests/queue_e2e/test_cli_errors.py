"""Queue commands through the `moxtrio` CLI against a running localserve:
errors on stderr with exit status 1, and retired messages listed by their
original sender rather than the fromid address used as MAIL FROM."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.smtp_e2e.conftest import submit, with_fromid_login
from tests.support.inproc import localserve_config_dir
from tests.support.procs import run_cli, running

pytestmark = pytest.mark.slow

MSG = b"From: mox@localhost\r\nTo: a@example.org\r\nSubject: cli\r\n\r\nbody\r\n"


def test_queue_command_errors_and_retired_sender(tmp_path: Path) -> None:
    directory, ip = localserve_config_dir(tmp_path, edit_domains=with_fromid_login)
    conf = str(directory / "mox.conf")
    with running(["localserve", "-dir", str(directory)], directory, ip):
        r = run_cli("-config", conf, "queue", "holdrules", "remove", "999999")
        assert (r.returncode, r.stdout, r.stderr) == (1, "", "remove hold rule: absent\n")

        unknown = 'looking up account: unknown account "nobody"\n'
        for args in (
            ["add", "nobody", "a@example.org"],
            ["remove", "nobody", "a@example.org"],
            ["list", "-account", "nobody"],
            ["lookup", "-account", "nobody", "a@example.org"],
        ):
            r = run_cli("-config", conf, "queue", "suppress", *args)
            assert (r.returncode, r.stdout, r.stderr) == (1, "", unknown), args

        # A fromid login: MAIL FROM is mox+<fromid>@localhost.
        submit(ip, ["a@example.org"], MSG, login="mox+app@localhost")
        deadline = time.monotonic() + 20
        while True:
            r = run_cli("-config", conf, "queue", "retired", "list")
            assert r.returncode == 0, r.stderr
            if " success " in r.stdout:
                break
            assert time.monotonic() < deadline, r.stdout
            time.sleep(0.2)
        [line] = r.stdout.splitlines()[1:]
        assert " from:mox@localhost to:a@example.org " in line, line
