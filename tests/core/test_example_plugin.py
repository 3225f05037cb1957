"""docs/plugins.md's worked example, installed and run as a user would."""

from __future__ import annotations

import shutil
import smtplib
from pathlib import Path

import pytest

from tests.support.procs import ROOT, run_cli, running, unique_loopback_ip

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "docs" / "examples" / "moxtrio_denydomain"
FIRST_PARTY = ["extra", "holdrules", "localserve", "metrics", "suppression", "webapi", "webhooks"]


def install_example(site: Path) -> None:
    """Lay the example out as an installed distribution with its entry point."""
    shutil.copytree(EXAMPLE, site / "moxtrio_denydomain")
    dist = site / "moxtrio_denydomain-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: moxtrio-denydomain\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[moxtrio.plugins]\ndenydomain = moxtrio_denydomain\n")
    (dist / "RECORD").write_text("")


def test_denydomain_example_refuses_recipients_and_reports_status(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_example(site)
    ip = unique_loopback_ip()
    directory = tmp_path / "ls"
    assert run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly").returncode == 0
    conf = directory / "mox.conf"
    conf.write_text(conf.read_text() + "Plugins:\n" + "".join(f"\t- {p}\n" for p in [*FIRST_PARTY, "denydomain"]))
    (directory / "plugins").mkdir()
    (directory / "plugins" / "denydomain.yaml").write_text(
        "domains:\n  - example.net\n  - .invalid\nmessage: recipient domain is not allowed here\n"
    )
    with running(["localserve", "-dir", str(directory)], directory, ip, extra_path=str(site)):
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("mox@localhost", "moxmoxmox")
            s.mail("mox@localhost")
            code, text = s.rcpt("someone@example.net")
            assert code == 550
            assert text.startswith(b"5.7.1 recipient domain is not allowed here (")
            assert s.rcpt("x@sub.test.invalid")[0] == 550
            assert s.rcpt("someone@example.org")[0] == 250
        status = run_cli("-config", str(conf), "denydomain", "status")
        assert status.returncode == 0
        assert status.stdout == "denied domains: example.net, .invalid\nrefused recipients since start: 2\n"


def test_denydomain_bad_settings_stop_the_server(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install_example(site)
    directory = tmp_path / "ls"
    assert run_cli("localserve", "-dir", str(directory), "-ip", unique_loopback_ip(), "-initonly").returncode == 0
    conf = directory / "mox.conf"
    conf.write_text(conf.read_text() + "Plugins:\n\t- denydomain\n")
    (directory / "plugins").mkdir()
    (directory / "plugins" / "denydomain.yaml").write_text("domains: example.net\n")
    import subprocess
    import sys

    from tests.support.procs import child_env

    r = subprocess.run([sys.executable, "-m", "core.cli", "localserve", "-dir", str(directory)], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, env=child_env(str(site)))
    assert r.returncode == 1
    assert "moxtrio: plugin denydomain: denydomain.yaml: domains must be a list of domain names" in r.stderr
    assert "Traceback" not in r.stderr
