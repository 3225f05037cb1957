"""The `moxtrio` command as a user runs it: localserve, serve, config test,
control commands, third-party plugins, and clean shutdown on SIGTERM."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx
import pytest

from tests.support.paths import CONFIGS
from tests.support.procs import localserve, run_cli, running, unique_loopback_ip
from tests.support.thirdparty import build_plugin_dist

pytestmark = pytest.mark.slow


def test_localserve_answers_on_1080_logs_listeners_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        out = server.output()
        assert (
            f"listening for http: http://{server.ip}:1080"
            " (webaccount /account/, webadmin /admin/, webapi /webapi/)"
        ) in out
        assert f" http://{server.ip}:1080/admin/                      admin interface, password: moxadmin" in out
        assert "moxmoxmox" in out
        r = httpx.get(f"http://{server.ip}:1080/webapi/", timeout=10, follow_redirects=True)
        assert r.status_code == 200
        assert "Send" in r.text  # the method index
        conf = server.directory / "mox.conf"
        assert (server.directory / "domains.conf").exists()
        ping = run_cli("-config", str(conf), "ping")
        assert ping.returncode == 0 and ping.stdout == "pong\n"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(timeout=15) == 0
        assert "server stopped" in server.output()
        assert not (server.directory / "ctl").exists()


def test_localserve_reuses_existing_dir_and_refuses_new_ip(tmp_path: Path) -> None:
    directory = tmp_path / "ls"
    first = run_cli("localserve", "-dir", str(directory), "-ip", "127.0.0.4", "-initonly")
    assert first.returncode == 0, first.stderr
    assert "IPs:\n\t\t\t- 127.0.0.4\n" in (directory / "mox.conf").read_text()
    again = run_cli("localserve", "-dir", str(directory), "-ip", "127.0.0.5")
    assert again.returncode == 1
    assert "can only use -ip when writing a new config file" in again.stderr


def test_config_test_reports_file_line_and_key(tmp_path: Path) -> None:
    good = run_cli("config", "test", "-config", str(CONFIGS / "webapi" / "mox.conf"))
    assert good.returncode == 0, good.stderr
    bad_dir = tmp_path / "bad"
    bad_dir.mkdir()
    for name in ("mox.conf", "domains.conf"):
        (bad_dir / name).write_text((CONFIGS / "webapi" / name).read_text())
    text = (bad_dir / "mox.conf").read_text().splitlines()
    text.insert(1, "Bogus: 1")
    (bad_dir / "mox.conf").write_text("\n".join(text) + "\n")
    bad = run_cli("config", "test", "-config", str(bad_dir / "mox.conf"))
    assert bad.returncode == 1
    assert f'{bad_dir / "mox.conf"}:2: unknown key "Bogus"' in bad.stderr


def _config_with_plugins(tmp_path: Path, ip: str, plugins: list[str]) -> Path:
    directory = tmp_path / "cfg"
    init = run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly")
    assert init.returncode == 0, init.stderr
    conf = directory / "mox.conf"
    conf.write_text(conf.read_text() + "Plugins:\n" + "".join(f"\t- {p}\n" for p in plugins))
    return conf


def test_third_party_plugin_enabled_in_mox_conf_runs_its_hook(tmp_path: Path) -> None:
    site = build_plugin_dist(tmp_path / "site", name="hello", module="moxtrio_hello_e2e")
    ip = unique_loopback_ip()
    conf = _config_with_plugins(tmp_path, ip, ["webapi", "hello"])
    with running(["-config", str(conf), "serve"], conf.parent, ip, extra_path=str(site)) as server:
        assert "plugins loaded: webapi, hello" in server.output()
        r = run_cli("-config", str(conf), "hello", "world")
        assert r.returncode == 0, r.stderr
        assert r.stdout == "hello from hello world\n"
        unknown = run_cli("-config", str(conf), "nosuch", "command")
        assert unknown.returncode == 2
        assert "unknown command: nosuch command" in unknown.stdout


def test_unknown_plugin_in_mox_conf_is_a_startup_error(tmp_path: Path) -> None:
    conf = _config_with_plugins(tmp_path, unique_loopback_ip(), ["webapi", "nosuchplugin"])
    r = run_cli("-config", str(conf), "serve", timeout=60)
    assert r.returncode == 1
    assert 'unknown plugin "nosuchplugin" in mox.conf Plugins' in r.stderr
    assert "Traceback" not in r.stderr



def test_bad_hook_time_limits_are_a_startup_error_naming_the_file(tmp_path: Path) -> None:
    conf = _config_with_plugins(tmp_path, unique_loopback_ip(), ["webapi"])
    (conf.parent / "plugins").mkdir()
    hooks_yaml = conf.parent / "plugins" / "hooks.yaml"
    hooks_yaml.write_text("time_limits:\n  moxtrio_deliver: 0\n")
    r = run_cli("-config", str(conf), "serve", timeout=60)
    assert r.returncode == 1
    assert f"{hooks_yaml}: time_limits: moxtrio_deliver must be a positive number of seconds" in r.stderr
    assert "Traceback" not in r.stderr

def test_port_in_use_is_a_one_line_startup_error(tmp_path: Path) -> None:
    with localserve(tmp_path) as first:
        directory = tmp_path / "second"
        assert run_cli("localserve", "-dir", str(directory), "-ip", first.ip, "-initonly").returncode == 0
        r = run_cli("localserve", "-dir", str(directory), timeout=60)
        assert r.returncode == 1
        assert "moxtrio: " in r.stderr and "in use" in r.stderr
        assert "Traceback" not in r.stderr


def test_setaccountpassword_through_the_control_socket(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        conf = server.directory / "mox.conf"
        r = run_cli("-config", str(conf), "setaccountpassword", "mox", stdin="n3w-secret\n")
        assert r.returncode == 0, r.stdout + r.stderr
        r = run_cli("-config", str(conf), "setaccountpassword", "nobody", stdin="x\n")
        assert r.returncode == 1
        assert "unknown account 'nobody'" in r.stdout


def test_ctl_command_without_server_is_a_clear_error(tmp_path: Path) -> None:
    conf = _config_with_plugins(tmp_path, unique_loopback_ip(), ["webapi"])
    r = run_cli("-config", str(conf), "ping")
    assert r.returncode == 1
    assert "is the server running?" in r.stderr
