"""The control socket survives every kind of bad client, over a real socket
to a real ``moxtrio localserve`` process."""

from __future__ import annotations

import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from tests.ops.helpers import ctl_connect, ctl_exchange, send
from tests.support.procs import localserve, run_cli

pytestmark = pytest.mark.slow


def _ping(directory: Path) -> None:
    r = run_cli("-config", str(directory / "mox.conf"), "ping")
    assert (r.returncode, r.stdout) == (0, "pong\n"), r.stdout + r.stderr


def test_hundred_clients_that_hang_up_at_once_while_a_send_succeeds(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        results: list[int] = []

        def sender() -> None:
            for i in range(3):
                results.append(send(server.ip, f"ctl{i}@localhost").status_code)

        t = threading.Thread(target=sender)
        t.start()
        for _ in range(100):
            ctl_connect(server.directory).close()
        t.join(timeout=60)
        assert results == [200, 200, 200]
        _ping(server.directory)
        assert server.proc.poll() is None
        assert "Traceback" not in server.output()


def test_bad_clients_never_affect_the_server(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        d = server.directory
        # Garbage, not JSON: a clear answer.
        assert ctl_exchange(d, b"\x00\xffhello\n")["exit"] == 2
        # JSON of the wrong shape.
        assert "argv" in ctl_exchange(d, b'{"x": 1}\n')["output"]
        assert ctl_exchange(d, b"[1,2]\n")["exit"] == 2
        # Deep nesting that makes the JSON decoder recurse.
        answer = ctl_exchange(d, b"[" * 200_000 + b"\n")
        assert answer["exit"] == 2 and "nested too deeply" in answer["output"]
        # A half request, then hang up.
        s = ctl_connect(d)
        s.sendall(b'{"argv": ["pi')
        s.close()
        # A request, then hang up before the answer is read.
        s = ctl_connect(d)
        s.sendall(b'{"argv": ["queue", "list"]}\n')
        s.shutdown(socket.SHUT_RDWR)
        s.close()
        # An endless line: refused once it passes the limit.
        s = ctl_connect(d)
        chunk = b"x" * 1024 * 1024
        try:
            for _ in range(40):
                s.sendall(chunk)
        except OSError:
            pass  # the server closed on us: that is the refusal
        s.close()
        # Silence: the connection is held open while others are served.
        silent = ctl_connect(d)
        _ping(d)
        # The server ends the silent connection after its read deadline.
        silent.settimeout(30)
        data = silent.recv(65536)
        assert b"no request within" in data
        silent.close()
        _ping(d)
        assert send(server.ip, "after@localhost").status_code == 200
        assert server.proc.poll() is None
        assert "Traceback" not in server.output()


def test_unknown_command_lists_the_commands(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        r = run_cli("-config", str(server.directory / "mox.conf"), "nosuch")
        assert r.returncode == 2
        # A failing command's text is an error: on stderr.
        assert "unknown command: nosuch" in r.stderr
        assert "  ping  - " in r.stderr and "  queue list" in r.stderr


def test_socket_is_only_for_the_servers_user(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        mode = stat.S_IMODE((server.directory / "ctl").stat().st_mode)
        assert mode == 0o600


def test_second_localserve_refuses_and_first_keeps_running(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        r = run_cli("localserve", "-dir", str(server.directory), timeout=60)
        assert r.returncode == 1
        assert f"another moxtrio server is running with data directory {server.directory}" in r.stderr
        time.sleep(0.5)
        assert server.proc.poll() is None
        assert (server.directory / "ctl").exists()
        _ping(server.directory)
        assert send(server.ip, "second@localhost").status_code == 200


def test_second_server_on_other_ports_but_same_data_dir_refuses_before_opening_it(tmp_path: Path) -> None:
    import shutil

    with localserve(tmp_path) as server:
        other = tmp_path / "other"
        other.mkdir()
        for name in ("domains.conf", "localhost.crt", "localhost.key", "dkim.localserve.privatekey.pkcs8.pem"):
            shutil.copy(server.directory / name, other / name)
        text = (server.directory / "mox.conf").read_text()
        text = text.replace("DataDir: .", f"DataDir: {server.directory}")
        text = text.replace(f"- {server.ip}", "- 127.0.0.1").replace("Port: 10", "Port: 20")
        (other / "mox.conf").write_text(text)
        db = server.directory / "moxtrio.db"
        before = db.stat().st_mtime_ns
        r = run_cli("-config", str(other / "mox.conf"), "serve", timeout=60)
        assert r.returncode == 1
        assert f"another moxtrio server is running with data directory {server.directory}" in r.stderr
        assert "Traceback" not in r.stderr
        assert db.stat().st_mtime_ns == before
        _ping(server.directory)
