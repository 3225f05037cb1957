"""Files and directories the server writes are private to its user.

Started the way a user starts it (`moxtrio localserve` as a child): the
config it writes, the database with its WAL and SHM files, stored message
files and every directory are without group or other permissions, and
modes left open by an earlier version are closed at start with a log line.
"""

from __future__ import annotations

import os
import smtplib
import stat
from pathlib import Path

import pytest

from tests.support.procs import run_cli, running, unique_loopback_ip

pytestmark = pytest.mark.slow


def _open_modes(root: Path) -> dict[str, str]:
    """Every file or directory under root that group or others can access."""
    bad = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [".", *dirnames, *filenames]:
            p = Path(dirpath) / name
            st = os.lstat(p)
            if stat.S_ISSOCK(st.st_mode) or stat.S_ISLNK(st.st_mode):
                continue
            if st.st_mode & 0o077:
                bad[str(p.relative_to(root))] = oct(stat.S_IMODE(st.st_mode))
    return bad


def test_server_writes_private_files_and_fixes_open_modes_at_start(tmp_path: Path) -> None:
    ip = unique_loopback_ip()
    directory = tmp_path / "ls"
    init = run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly")
    assert init.returncode == 0, init.stderr
    assert _open_modes(directory) == {}, "config written with open modes"
    # An earlier version (or a copy with a loose umask) left things readable.
    for dirpath, _dirs, filenames in os.walk(directory):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            os.chmod(Path(dirpath) / f, 0o644)
    assert "domains.conf" in _open_modes(directory)

    with running(["localserve", "-dir", str(directory)], directory, ip) as server:
        assert "removed group and other permissions from" in server.output()
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.sendmail("a@localhost", ["mox@localhost"], b"Subject: modes\r\n\r\nhello\r\n")
        data = directory
        assert (data / "moxtrio.db").exists() and (data / "moxtrio.db-wal").exists()
        assert any((data / "msg").rglob("*")), "no message file stored"
        assert _open_modes(directory) == {}


def test_fix_modes_checks_top_level_files_and_walks_open_trees_only(tmp_path: Path) -> None:
    from core.filemodes import fix_modes

    root = tmp_path / "data"
    (root / "private").mkdir(parents=True)
    (root / "open" / "deeper").mkdir(parents=True)
    files = {
        "moxtrio.db": 0o644,
        "private/left.txt": 0o644,
        "open/a.txt": 0o644,
        "open/deeper/b.txt": 0o640,
    }
    for name, mode in files.items():
        (root / name).write_text("x")
        os.chmod(root / name, mode)
    os.chmod(root, 0o700)
    os.chmod(root / "private", 0o700)
    os.chmod(root / "open", 0o755)
    os.chmod(root / "open" / "deeper", 0o700)
    changed = {str(p.relative_to(root)) for p in fix_modes([root])}
    assert changed == {"moxtrio.db", "open", "open/a.txt", "open/deeper/b.txt"}
    # A private tree is not walked at every start: what is in it stays as it was.
    assert stat.S_IMODE((root / "private/left.txt").stat().st_mode) == 0o644
