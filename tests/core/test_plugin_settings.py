"""Plugin settings are read once, in a worker thread, before plugins configure."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from core.plugin_api import PluginConfigError, PluginContext


def make_ctx(config_dir: Path) -> PluginContext:
    config: Any = SimpleNamespace(dir=config_dir)
    return PluginContext(config=config, store=None, hooks=SimpleNamespace())  # type: ignore[arg-type]


async def test_settings_come_from_the_load_not_the_disk(tmp_path: Path) -> None:
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    (plugdir / "demo.yaml").write_text("answer: 42\n")
    ctx = make_ctx(tmp_path)
    await ctx.load_settings()
    (plugdir / "demo.yaml").write_text("answer: 7\n")
    (plugdir / "late.yaml").write_text("x: 1\n")
    # After the load a running server never reads the files again.
    assert ctx.plugin_settings("demo") == {"answer": 42}
    assert ctx.plugin_settings("late") == {}


async def test_overrides_win_over_the_file(tmp_path: Path) -> None:
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    (plugdir / "demo.yaml").write_text("a: 1\nb: 2\n")
    ctx = make_ctx(tmp_path)
    ctx.settings_overrides["demo"] = {"b": 3}
    await ctx.load_settings()
    assert ctx.plugin_settings("demo") == {"a": 1, "b": 3}


async def test_broken_settings_file_stops_the_load_with_its_line(tmp_path: Path) -> None:
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    (plugdir / "broken.yaml").write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(PluginConfigError, match=r"broken\.yaml:\d+: invalid yaml"):
        await make_ctx(tmp_path).load_settings()


async def test_refresh_rereads_and_keeps_the_old_version_on_a_broken_edit(tmp_path: Path) -> None:
    plugdir = tmp_path / "plugins"
    plugdir.mkdir()
    (plugdir / "demo.yaml").write_text("answer: 1\n")
    ctx = make_ctx(tmp_path)
    await ctx.load_settings()
    (plugdir / "demo.yaml").write_text("answer: 2\n")
    await ctx.refresh_settings()
    assert ctx.plugin_settings("demo") == {"answer": 2}
    (plugdir / "demo.yaml").write_text("answer: [broken\n")
    await ctx.refresh_settings()
    assert ctx.plugin_settings("demo") == {"answer": 2}
