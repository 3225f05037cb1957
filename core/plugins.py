"""The plugin manager: which plugins run, found by name through entry points.

Every plugin, first-party or not, is a module registered in the
``moxtrio.plugins`` entry-point group. The core never imports a plugin by
its module path: first-party plugins are simply the entry points that
moxtrio's own distribution declares. mox.conf's ``Plugins`` list (our one
extension of mox's format) names the plugins to load, by entry-point name
or importable module path; without it, all first-party plugins load.
"""

from __future__ import annotations

import difflib
import importlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
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
    # A distribution's name is read from its METADATA file on every access;
    # the entry points of one distribution share one object, so read it once.
    dist_names: dict[int, str] = {}
    names = []
    for name, ep in available.items():
        if ep.dist is None:
            continue
        dist_name = dist_names.get(id(ep.dist))
        if dist_name is None:
            dist_name = dist_names[id(ep.dist)] = ep.dist.name
        if dist_name == FIRST_PARTY_DIST:
            names.append(name)
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
    known = ", ".join(sorted(available)) or "none"
    raise PluginLoadError(f'unknown plugin "{name}" in mox.conf Plugins (installed plugins: {known})')


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
    _check_hook_names(pm)
    # Refuse what the dispatcher cannot honour (wrappers, specs without a kind)
    # now, naming the plugin, rather than when the hook is first called.
    contract_rules(pm)
    return pm


def _check_hook_names(pm: pluggy.PluginManager) -> None:
    """One line per misspelled hook: the plugin, the hook, the close matches."""
    known = sorted(n for n in dir(hookspecs) if n.startswith(f"{hookspecs.PROJECT}_"))
    for name in dir(pm.hook):
        if name.startswith("_") or name in known:
            continue
        for impl in getattr(pm.hook, name).get_hookimpls():
            if impl.optionalhook:
                continue
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.8)
            hint = f" (did you mean {' or '.join(close)}?)" if close else ""
            raise PluginLoadError(f'plugin "{impl.plugin_name}" implements unknown hook {name}{hint}')
    pm.check_pending()


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin as ``moxtrio plugins`` shows it."""

    name: str
    version: str
    source: str
    hooks: list[str]


def describe_plugins(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Loaded plugins in hook order, with their versions and implemented hooks."""
    available = available_plugins()
    out = []
    for name in plugin_names(pm):
        plugin = pm.get_plugin(name)
        ep = available.get(name)
        if ep is not None and ep.dist is not None:
            version, source = ep.dist.version, f"{ep.dist.name}, {ep.value}"
        else:
            version = str(getattr(plugin, "__version__", "unknown"))
            source = getattr(plugin, "__name__", name)
        hooks = sorted(c.name for c in pm.get_hookcallers(plugin) or [])
        out.append(PluginInfo(name, version, source, hooks))
    return out


def plugin_names(pm: pluggy.PluginManager) -> list[str]:
    """Names of the registered plugins, in the order their hooks run."""
    names = [name for name, _ in pm.list_name_plugin() if name is not None]
    return names[::-1]
