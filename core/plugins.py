"""The plugin manager: which plugins run, found by name through entry points.

Every plugin, first-party or not, is a module registered in the
``moxtrio.plugins`` entry-point group. The core never imports a plugin by
its module path: first-party plugins are simply the entry points that
moxtrio's own distribution declares. mox.conf's ``Plugins`` list (our one
extension of mox's format) names the plugins to load, by entry-point name
or importable module path; without it, all first-party plugins load.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType

import pluggy

from core import hookspecs
from core.dispatch import contract_rules
from core.plugin_api import PluginLoadError

log = logging.getLogger("moxtrio.plugins")

ENTRY_POINT_GROUP = "moxtrio.plugins"
FIRST_PARTY_DIST = "moxtrio"


def available_plugins() -> dict[str, EntryPoint]:
    """All installed plugins by entry-point name."""
    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def first_party_names(available: dict[str, EntryPoint] | None = None) -> list[str]:
    """Names of the plugins that ship with moxtrio, in a stable order."""
    available = available_plugins() if available is None else available
    names = [
        name
        for name, ep in available.items()
        if ep.dist is not None and ep.dist.name == FIRST_PARTY_DIST
    ]
    return sorted(names)


def _load_one(name: str, available: dict[str, EntryPoint]) -> ModuleType:
    ep = available.get(name)
    if ep is not None:
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - turned into a clear startup error
            raise PluginLoadError(f"plugin {name!r}: cannot load {ep.value}: {exc}") from exc
        if not isinstance(obj, ModuleType):
            raise PluginLoadError(f"plugin {name!r}: entry point {ep.value} is not a module")
        return obj
    if "." in name or name.isidentifier():
        try:
            return importlib.import_module(name)
        except ImportError as exc:
            if exc.name is not None and name.startswith(exc.name):
                known = ", ".join(sorted(available)) or "none"
                raise PluginLoadError(
                    f'unknown plugin "{name}" in mox.conf Plugins (installed plugins: {known})'
                ) from exc
            raise PluginLoadError(f"plugin {name!r}: import failed: {exc}") from exc
    raise PluginLoadError(f'unknown plugin "{name}" in mox.conf Plugins')


def create_manager(
    enabled: Sequence[str] | None, extra_modules: Iterable[object] = ()
) -> pluggy.PluginManager:
    """Build the plugin manager for a server.

    ``enabled`` is mox.conf's ``Plugins`` list, or ``None`` for all
    first-party plugins. ``extra_modules`` are registered as well (tests
    use this to add a plugin object without packaging it).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    available = available_plugins()
    names = first_party_names(available) if enabled is None else list(enabled)
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise PluginLoadError(f'plugin "{twice}" listed twice in mox.conf Plugins')
    modules = [(name, _load_one(name, available)) for name in names]
    # pluggy calls the most recently registered implementation first; register
    # in reverse so that hooks run in the order plugins are listed.
    for obj in reversed(list(extra_modules)):
        pm.register(obj)
    for name, module in reversed(modules):
        pm.register(module, name=name)
    # Catch misspelled hook names in plugins early: an implementation of a
    # hook that does not exist would silently never run.
    pm.check_pending()
    # Refuse what the dispatcher cannot honour (wrappers, specs without a kind)
    # now, naming the plugin, rather than when the hook is first called.
    contract_rules(pm)
    return pm


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of the registered plugins, in the order their hooks run."""
    names = [name for name, _ in pm.list_name_plugin() if name is not None]
    return names[::-1]
