"""The ``moxtrio`` command as a new user meets it: help, versions, plugins,
config test with the start-up checks, and start-up errors."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.cli_catalog import LOCAL_COMMANDS, global_parser, plugin_cli_commands
from tests.support.procs import child_env, localserve, moxtrio_cmd, run_cli, unique_loopback_ip

pytestmark = pytest.mark.slow


def _init(tmp_path: Path, ip: str | None = None) -> Path:
    directory = tmp_path / "cfg"
    r = run_cli("localserve", "-dir", str(directory), "-ip", ip or unique_loopback_ip(), "-initonly")
    assert r.returncode == 0, r.stderr
    return directory / "mox.conf"


def test_help_needs_no_config_and_lists_every_command() -> None:
    r = run_cli("help")
    assert r.returncode == 0, r.stderr
    for flag in ("-h", "--help", "-help"):
        assert run_cli(flag).stdout == r.stdout
    bare = run_cli()
    assert bare.returncode == 2 and bare.stderr == r.stdout
    for words in ("serve", "localserve", "config test", "plugins", "version", "queue list",
                  "queue webhook list", "queue suppress add", "setaccountpassword", "stop"):
        assert f"\n  {words} " in r.stdout, words
    assert "-config PATH" in r.stdout and "-loglevel LEVEL" in r.stdout


def test_every_command_describes_every_flag_with_h_and_help() -> None:
    for cmd in [*LOCAL_COMMANDS, *plugin_cli_commands()]:
        words = list(cmd.words)
        for args in ([*words, "-h"], ["help", *words]):
            r = run_cli(*args)
            assert r.returncode == 0, (args, r.stderr)
            for action in cmd.parser()._actions:
                for flag in action.option_strings:
                    assert flag in r.stdout, (args, flag)
                assert (action.help or "")[:20] in " ".join(r.stdout.split()), (args, action.help)
    r = run_cli("help")
    for action in global_parser()._actions:
        assert action.option_strings[0] in r.stdout


def test_help_for_a_control_command_and_for_unknown_ones() -> None:
    r = run_cli("queue", "list", "-h")
    assert r.returncode == 0 and "usage: moxtrio queue list" in r.stdout
    r = run_cli("help", "queue")
    assert "queue retired list" in r.stdout
    r = run_cli("help", "nosuch")
    assert r.returncode == 2 and 'unknown command "nosuch"' in r.stderr
    r = run_cli("nosuch", "thing")
    assert r.returncode == 2 and 'unknown command "nosuch thing"' in r.stderr
    assert "Traceback" not in r.stderr


def test_bad_loglevel_flag_is_a_clear_error() -> None:
    r = run_cli("-loglevel", "verbose", "serve")
    assert r.returncode == 2
    assert 'moxtrio: -loglevel: unknown log level "verbose"' in r.stderr and "Traceback" not in r.stderr


def test_version_in_three_spellings() -> None:
    for args in (["version"], ["--version"], ["-version"]):
        r = run_cli(*args)
        assert r.returncode == 0 and r.stdout.startswith("moxtrio 0."), (args, r.stderr)


def test_plugins_lists_versions_and_hooks_without_a_server(tmp_path: Path) -> None:
    conf = _init(tmp_path)
    r = run_cli("-config", str(conf), "plugins")
    assert r.returncode == 0, r.stderr
    assert "webapi 0.1.0 (moxtrio, plugins.webapi)" in r.stdout
    blocks = r.stdout.split("\n")
    i = blocks.index(next(b for b in blocks if b.startswith("webhooks ")))
    assert "moxtrio_outgoing_event" in blocks[i + 1]


def test_config_test_refuses_what_serve_refuses(tmp_path: Path) -> None:
    conf = _init(tmp_path)
    text = conf.read_text()
    cases = {
        "plugin": (text + "Plugins:\n\t- webapi\n\t- nosuch\n",
                   'unknown plugin "nosuch" in mox.conf Plugins (installed plugins: extra, holdrules'),
        "level": (text.replace("LogLevel: traceauth", "LogLevel: verbose"), 'unknown log level "verbose"'),
    }
    for name, (content, message) in cases.items():
        conf.write_text(content)
        r = run_cli("config", "test", "-config", str(conf))
        assert r.returncode == 1, name
        line = next(ln for ln in r.stderr.splitlines() if message in ln)
        path, lineno, _ = line.split(":", 2)
        assert path == str(conf) and int(lineno) > 0, line
        assert content.splitlines()[int(lineno) - 1].split(":")[0].strip() in ("Plugins", "LogLevel")
        serve = run_cli("-config", str(conf), "serve")
        assert serve.returncode == 1 and message in serve.stderr, name
    conf.write_text(text)
    settings = conf.parent / "plugins"
    settings.mkdir()
    (settings / "webhooks.yaml").write_text("a: [1,\n b\n")
    r = run_cli("config", "test", "-config", str(conf))
    assert r.returncode == 1 and f"{settings / 'webhooks.yaml'}:3: invalid yaml" in r.stderr
    (settings / "webhooks.yaml").unlink()
    (settings / "localserve.yaml").write_text("Timeouts: nonsense\n")
    (conf.parent / "localhost.crt").rename(tmp_path / "crt")
    r = run_cli("config", "test", "-config", str(conf))
    assert r.returncode == 1 and 'listener "local": TLS CertFile' in r.stderr
    (tmp_path / "crt").rename(conf.parent / "localhost.crt")
    (conf.parent / "domains.conf").rename(tmp_path / "domains.conf")
    r = run_cli("config", "test", "-config", str(conf))
    assert r.returncode == 1
    assert f"{conf.parent / 'domains.conf'}: cannot read domains.conf" in r.stderr
    assert "[Errno" not in r.stderr and str(conf) in r.stderr


def test_plugin_hook_typo_is_one_line(tmp_path: Path) -> None:
    conf = _init(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "typo_plugin.py").write_text(
        "from core.hookspecs import hookimpl\n\n@hookimpl\ndef moxtrio_configre(ctx):\n    pass\n"
    )
    conf.write_text(conf.read_text() + "Plugins:\n\t- webapi\n\t- typo_plugin\n")
    for args in (["serve"], ["config", "test"]):
        r = subprocess.run(moxtrio_cmd("-config", str(conf), *args), capture_output=True, text=True,
                           timeout=60, env=child_env(str(site)))
        assert r.returncode == 1
        errors = [ln for ln in r.stderr.splitlines() if "moxtrio_configre" in ln]
        assert len(errors) == 1, r.stderr
        assert 'plugin "typo_plugin"' in errors[0] and "did you mean moxtrio_configure?" in errors[0]
        assert "Traceback" not in r.stderr


def test_plugin_that_raises_at_start_up_is_one_line_and_a_logged_traceback(tmp_path: Path) -> None:
    conf = _init(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "crashing_plugin.py").write_text(
        "from core.hookspecs import hookimpl\n\n@hookimpl\ndef moxtrio_configure(ctx):\n"
        "    raise KeyError('boom')\n"
    )
    conf.write_text(conf.read_text() + "Plugins:\n\t- webapi\n\t- crashing_plugin\n")
    r = subprocess.run(moxtrio_cmd("-config", str(conf), "serve"), capture_output=True, text=True,
                       timeout=60, env=child_env(str(site)))
    assert r.returncode == 1
    assert "moxtrio: plugin 'crashing_plugin' failed in moxtrio_configure: 'boom'" in r.stderr
    logged = next(ln for ln in r.stderr.splitlines() if 'm="plugin failed at start-up"' in ln)
    assert logged.startswith("l=error") and 'stack="Traceback' in logged and "KeyError" in logged
    assert not r.stderr.startswith("Traceback") and "ExceptionGroup" not in r.stderr


def test_port_in_use_names_address_and_leaves_no_new_directory(tmp_path: Path) -> None:
    with localserve(tmp_path) as first:
        directory = tmp_path / "second"
        r = run_cli("localserve", "-dir", str(directory), "-ip", first.ip, timeout=60)
        assert r.returncode == 1
        assert f"cannot listen on {first.ip}:1025 (smtp, listener local)" in r.stderr
        assert "another moxtrio server" not in r.stderr  # that one has another data dir
        assert not directory.exists()
        assert "Traceback" not in r.stderr


def test_banner_advertises_the_bound_address(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        server.wait_for("prometheus metrics")
        out = server.output()
        assert f"http://{server.ip}:1080/webapi/" in out
        assert "localhost:1080" not in out


def test_control_commands_describe_exactly_the_flags_the_server_parses(tmp_path: Path) -> None:
    from core import ctl
    from core.cli_catalog import control_commands

    commands = [c for c in control_commands(None) if c.path != ("version",)]  # runs locally
    with localserve(tmp_path) as server:
        sock = server.directory / "ctl"
        for cmd in commands:
            words = list(cmd.path)
            h = run_cli(*words, "-h")
            assert h.returncode == 0 and f"usage: moxtrio {' '.join(words)}" in h.stdout, words
            assert cmd.help in h.stdout
            for flag, text in cmd.flags:
                assert text, (words, flag)
                assert f"  {flag} " in h.stdout, (words, flag)
                name, *value = flag.split(" ")
                # The server knows every documented flag (a nonsense value may
                # still be refused, but not the flag).
                r = ctl.call(sock, [*words, name, *(["nosuch-x"] if value else [])])
                assert "flag provided but not defined" not in r.output, (words, flag)
            if cmd.flags:
                r = ctl.call(sock, [*words, "-bogus"])
                assert "flag provided but not defined: -bogus" in r.output, (words, r.output)
