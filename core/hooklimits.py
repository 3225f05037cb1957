"""Operator overrides of the hooks' time limits: ``<config dir>/plugins/hooks.yaml``.

Each async-dispatched hook declares its time limit in its specification
(:mod:`core.hookspecs`). An operator running a slow plugin changes them here
instead of patching code::

    time_limits:
      default: 45              # every hook that declares the standard limit
      moxtrio_deliver: 600     # one hook by name

mox.conf has no room for these, so they live beside the plugins' own
settings files. A wrong key or value stops start-up with the file's name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.hookspecs import HOOK_KINDS
from core.plugin_api import PluginConfigError, read_settings_file, settings_path

SETTINGS_NAME = "hooks"
DEFAULT_KEY = "default"


def parse_time_limits(data: dict[str, Any], hooks: Iterable[str], where: str) -> dict[str, float]:
    """The ``time_limits`` mapping, checked against the known hook names."""
    unknown = sorted(set(data) - {"time_limits"})
    if unknown:
        raise PluginConfigError(f"{where}: unknown setting(s): {', '.join(unknown)}")
    limits = data.get("time_limits") or {}
    if not isinstance(limits, dict):
        raise PluginConfigError(f"{where}: time_limits must map hook names to seconds")
    known = set(hooks)
    out: dict[str, float] = {}
    for name, value in limits.items():
        if name != DEFAULT_KEY and name not in known:
            raise PluginConfigError(f"{where}: time_limits: no hook named {name!r}")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PluginConfigError(f"{where}: time_limits: {name} must be a number of seconds")
        if not math.isfinite(value) or value <= 0:
            raise PluginConfigError(f"{where}: time_limits: {name} must be a positive number of seconds")
        out[str(name)] = float(value)
    return out


def load_time_limits(config_dir: str | Path) -> dict[str, float]:
    """Read ``plugins/hooks.yaml`` (blocking: call it in a thread from trio)."""
    path = settings_path(config_dir, SETTINGS_NAME)
    return parse_time_limits(read_settings_file(path), HOOK_KINDS, str(path))
