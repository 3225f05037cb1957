"""Plugin loading: first-party, entry points, mox.conf's list, unknown names."""

from __future__ import annotations

import sys

import pytest

from core.plugin_api import PluginLoadError
from core.plugins import available_plugins, create_manager, first_party_names, plugin_names
from tests.support.thirdparty import build_plugin_dist

FIRST_PARTY = [
    "extra", "holdrules", "localserve", "metrics", "suppression", "webaccount", "webadmin", "webapi",
    "webhooks",
]


def test_all_first_party_plugins_load_when_mox_conf_names_none() -> None:
    assert first_party_names() == FIRST_PARTY
    pm = create_manager(None)
    assert plugin_names(pm) == FIRST_PARTY


def test_mox_conf_list_selects_plugins_in_its_order() -> None:
    pm = create_manager(["webapi", "extra"])
    assert sorted(plugin_names(pm)) == ["extra", "webapi"]


def test_unknown_plugin_name_is_a_clear_error() -> None:
    with pytest.raises(PluginLoadError, match='unknown plugin "nosuchplugin" in mox.conf Plugins'):
        create_manager(["webapi", "nosuchplugin"])


def test_plugin_listed_twice_is_an_error() -> None:
    with pytest.raises(PluginLoadError, match="listed twice"):
        create_manager(["extra", "extra"])


def test_third_party_entry_point_is_found_and_its_hook_called(tmp_path, monkeypatch) -> None:
    build_plugin_dist(tmp_path / "site", name="hello3p", module="moxtrio_hello3p")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert "hello3p" in available_plugins()
    # Not first-party: absent Plugins key does not load it.
    assert "hello3p" not in first_party_names()
    pm = create_manager(["extra", "hello3p"])
    assert "hello3p" in plugin_names(pm)
    commands = pm.hook.moxtrio_ctl_commands(ctx=None)
    assert [c.path for group in commands for c in group] == [("hello",)]
    assert sys.modules["moxtrio_hello3p"].CALLS == ["moxtrio_ctl_commands"]


def test_plugin_by_module_path(tmp_path, monkeypatch) -> None:
    mod = tmp_path / "mymodplugin.py"
    mod.write_text(
        "from moxtrio import hookimpl\n"
        "@hookimpl\n"
        "def moxtrio_migrations():\n"
        "    return []\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    pm = create_manager(["mymodplugin"])
    assert plugin_names(pm) == ["mymodplugin"]


def test_plugin_with_misspelled_hook_is_refused(tmp_path, monkeypatch) -> None:
    (tmp_path / "typoplugin.py").write_text(
        "from moxtrio import hookimpl\n"
        "@hookimpl\n"
        "def moxtrio_submision(submission):\n"
        "    return None\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(Exception, match="moxtrio_submision"):
        create_manager(["typoplugin"])
