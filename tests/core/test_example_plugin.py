"""Third-party plugins as their authors write them: docs/plugins.md's worked
example and a plugin package written from that page alone (tests/thirdparty_plugins),
both importing only ``moxtrio``, installed as pip would and run in a real server."""

from __future__ import annotations

import re
import smtplib
import sys
import time
from pathlib import Path

import pytest

from core.store.settings import DatabaseSettings
from tests.support.backend import write_store_settings
from tests.support.procs import ROOT, run_cli, running, unique_loopback_ip
from tests.support.thirdparty import imported_modules, install_package

pytestmark = pytest.mark.slow

EXAMPLE = ROOT / "docs" / "examples" / "moxtrio_denydomain"
FIRST_PARTY = [
    "extra", "holdrules", "localserve", "metrics", "suppression", "webaccount", "webadmin", "webapi",
    "webhooks",
]


TALLY = ROOT / "tests" / "thirdparty_plugins" / "moxtrio_tally"


def install_example(site: Path) -> None:
    """Lay the example out as an installed distribution with its entry point."""
    install_package(EXAMPLE, site, "denydomain", "moxtrio-denydomain")


def localserve_config(tmp_path: Path, ip: str, plugins: list[str]) -> Path:
    directory = tmp_path / "ls"
    assert run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly").returncode == 0
    conf = directory / "mox.conf"
    conf.write_text(conf.read_text() + "Plugins:\n" + "".join(f"\t- {p}\n" for p in plugins))
    (directory / "plugins").mkdir()
    return conf


@pytest.mark.parametrize("package", [EXAMPLE, TALLY], ids=["denydomain", "tally"])
def test_third_party_plugins_import_only_moxtrio(package: Path) -> None:
    names = imported_modules(package)
    assert "moxtrio" in names
    assert names - set(sys.stdlib_module_names) == {"moxtrio"}


def test_plugins_md_examples_import_only_moxtrio() -> None:
    text = (ROOT / "docs" / "plugins.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) >= 2
    imports = [line for block in blocks for line in block.splitlines() if "import " in line]
    assert imports
    assert all(line.startswith("from moxtrio import ") for line in imports), imports


def test_moxtrio_is_the_public_face_of_the_core() -> None:
    import moxtrio
    from core.hookspecs import hookimpl
    from core.plugin_api import PluginContext, Rejection

    assert moxtrio.hookimpl is hookimpl
    assert moxtrio.PluginContext is PluginContext and moxtrio.Rejection is Rejection
    assert sorted(moxtrio.__all__) == sorted(n for n in dir(moxtrio) if not n.startswith("_")
                                            and n not in {"annotations"})


def test_tally_plugin_hooks_run_in_a_real_server(
    tmp_path: Path, default_db_backend: DatabaseSettings | None
) -> None:
    """The portable-SQL plugin of the docs, on SQLite and on PostgreSQL."""
    site = install_package(TALLY, tmp_path / "site", "tally", "moxtrio-tally")
    ip = unique_loopback_ip()
    conf = localserve_config(tmp_path, ip, [*FIRST_PARTY, "tally"])
    write_store_settings(conf.parent, default_db_backend)
    (conf.parent / "plugins" / "tally.yaml").write_text(
        "blocked_senders:\n  - Spammer@localhost\ntag: campaign-7\n"
    )
    with running(["localserve", "-dir", str(conf.parent)], conf.parent, ip, extra_path=str(site)):
        # Verdict at MAIL FROM, on the delivery listener.
        # (A localhost sender: localserve accepts its own domain without a DNS lookup.)
        with smtplib.SMTP(ip, 1025, timeout=10) as s:
            s.ehlo("client.example")
            code, text = s.mail("spammer@localhost")
            assert code == 550
            assert text.startswith(b"5.7.1 sender refused by tally (")
        # A submission: tagged by the submission hook, delivered by localserve,
        # and the delivery event recorded in the plugin's own table.
        with smtplib.SMTP(ip, 1587, timeout=10) as s:
            s.login("mox@localhost", "moxmoxmox")
            s.sendmail("mox@localhost", ["someone@example.org"],
                       b"From: mox@localhost\r\nTo: someone@example.org\r\nSubject: hi\r\n\r\nhello\r\n")
        want = "delivered someone@example.org campaign-7\n"
        shown = ""
        for _ in range(100):
            show = run_cli("-config", str(conf), "tally", "show")
            assert show.returncode == 0, show.stderr
            shown = show.stdout
            if shown:
                break
            time.sleep(0.2)
        assert shown == want


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
