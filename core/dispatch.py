"""Calling pluggy hooks from trio, with our own failure and first-result rules.

pluggy is synchronous: ``pm.hook.x()`` does not await, and with
``firstresult=True`` it would stop at an async implementation's un-awaited
coroutine. So pluggy keeps registration, specs and ordering, and this module
calls the implementations itself (as datasette's ``await_me_maybe`` does):
in pluggy's call order, awaiting what is awaitable, under the hook's time
limit, with verdict hooks failing closed and observer hooks failing open.

Every rule comes from the hook's specification in :mod:`core.hookspecs`:
``firstresult`` decides whether the first answer wins, ``@_kind`` the
failure policy and the time limit. A call site cannot change them:
:meth:`HookDispatcher.first` on a hook that is not ``firstresult`` (or
:meth:`HookDispatcher.call` on one that is) is a programming error.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy
import trio

from core.hookspecs import DEFAULT_TIME_LIMIT
from core.mlog import kv
from core.plugin_api import PluginLoadError

log = logging.getLogger("moxtrio.hooks")

#: A repeated plugin failure is logged with its traceback once per this many seconds.
REPORT_INTERVAL = 300.0

KINDS = ("verdict", "observer", "setup")


class HookContractError(PluginLoadError):
    """A hook specification or implementation breaks the contract; start-up stops."""


@dataclass(frozen=True)
class HookRule:
    """What the specification of one hook says about calling it."""

    name: str
    kind: str
    firstresult: bool
    #: Declared seconds; None for the standard limit (``default`` in hooks.yaml).
    time_limit: float | None

    @property
    def fails_closed(self) -> bool:
        return self.kind != "observer"


def _rule(caller: Any) -> HookRule:
    spec = caller.spec
    kind = getattr(spec.function, "moxtrio_kind", None)
    if kind not in KINDS:
        raise HookContractError(
            f"hook {caller.name} declares no kind (verdict, observer or setup) in its specification"
        )
    limit = getattr(spec.function, "moxtrio_time_limit", None)
    return HookRule(caller.name, kind, bool(spec.opts.get("firstresult")), limit)


def contract_rules(pm: pluggy.PluginManager) -> dict[str, HookRule]:
    """The rules of every specified hook; refuses what the dispatcher cannot honour.

    Raises :class:`HookContractError` for a hook specification without a kind
    and for an implementation marked as a pluggy wrapper (``wrapper=True`` or
    ``hookwrapper=True``): the dispatcher calls implementations one by one
    itself, so a wrapper would silently never run.
    """
    rules: dict[str, HookRule] = {}
    for name, caller in vars(pm.hook).items():
        if not isinstance(caller, pluggy.HookCaller) or caller.spec is None:
            continue
        rules[name] = _rule(caller)
        for impl in caller.get_hookimpls():
            _refuse_wrapper(name, impl)
    return rules


def _refuse_wrapper(name: str, impl: Any) -> None:
    if impl.hookwrapper or impl.wrapper:
        raise HookContractError(
            f"plugin {impl.plugin_name!r}: {name} is marked as a pluggy wrapper "
            "(wrapper=True/hookwrapper=True); moxtrio does not support hook wrappers, "
            "implement the hook as a plain function"
        )


class HookFailed(Exception):
    """A verdict hook's plugin raised or ran out of time: fail closed.

    Callers turn this into a temporary error (SMTP ``451 4.3.0``, webapi
    ``server``) so that nothing is half-done.
    """

    def __init__(self, hook: str, plugin: str, cause: BaseException | str) -> None:
        self.hook = hook
        self.plugin = plugin
        self.cause = cause
        super().__init__(f"plugin {plugin!r} failed in {hook}: {cause}")


class HookDispatcher:
    """Calls hook implementations in order; async-aware; rules from the specs.

    ``time_limits`` overrides the declared limits by hook name, the key
    ``default`` replacing the standard limit (:mod:`core.hooklimits` reads
    them from ``plugins/hooks.yaml``); ``time_limit`` is a shorthand for
    ``default``.
    """

    def __init__(
        self,
        pm: pluggy.PluginManager,
        time_limit: float | None = None,
        time_limits: Mapping[str, float] | None = None,
    ) -> None:
        self.pm = pm
        self.rules = contract_rules(pm)
        overrides = dict(time_limits or {})
        standard = overrides.get("default", DEFAULT_TIME_LIMIT if time_limit is None else time_limit)
        self.time_limits: dict[str, float] = {
            name: overrides.get(name, standard if rule.time_limit is None else rule.time_limit)
            for name, rule in self.rules.items()
        }
        self._reported: dict[tuple[str, str, str, str], float] = {}
        #: The server's context, handed to in-transaction hooks that take
        #: ``ctx`` when the call site passes none (bound by PluginContext).
        self.context: Any = None

    def time_limit_for(self, name: str) -> float:
        """Seconds one implementation of async-dispatched hook ``name`` may take."""
        return self.time_limits[name]

    def implemented(self, name: str) -> bool:
        """Whether any plugin implements hook ``name``."""
        return bool(getattr(self.pm.hook, name).get_hookimpls())

    def _impls(self, name: str) -> Iterator[Any]:
        caller = getattr(self.pm.hook, name)
        # pluggy runs the list back to front: last registered / tryfirst first.
        for impl in reversed(caller.get_hookimpls()):
            _refuse_wrapper(name, impl)  # registered after start-up checks
            yield impl

    def _rule(self, name: str, firstresult: bool | None = None) -> HookRule:
        rule = self.rules.get(name)
        if rule is None:
            raise KeyError(f"no hook specification named {name}")
        if firstresult is not None and rule.firstresult != firstresult:
            want = "first()/first_sync()" if rule.firstresult else "call()/call_sync()"
            raise TypeError(f"{name} is {'' if rule.firstresult else 'not '}firstresult: use {want}")
        return rule

    def _fail(self, name: str, plugin: str, exc: BaseException | str) -> None:
        self._report(name, plugin, exc)
        if self.rules[name].fails_closed:
            raise HookFailed(name, plugin, exc) from (
                exc if isinstance(exc, BaseException) else None
            )

    def _report(self, name: str, plugin: str, exc: BaseException | str) -> None:
        """Log a plugin's failure: with its traceback at error level the first
        time, then at most once per ``REPORT_INTERVAL`` (a plugin failing on
        every message must not flood the log); repeats in between at debug."""
        key = (plugin, name, type(exc).__name__, str(exc)[:200])
        now = time.monotonic()
        last = self._reported.get(key)
        kind = "verdict, failing closed" if self.rules[name].fails_closed else "observer, continuing"
        attrs = kv(plugin=plugin, hook=name, kind=kind, err=str(exc) or type(exc).__name__)
        if last is not None and now - last < REPORT_INTERVAL:
            log.debug("plugin hook failed again", extra=attrs)
            return
        if len(self._reported) >= 1000:
            self._reported.clear()
        self._reported[key] = now
        exc_info = (type(exc), exc, exc.__traceback__) if isinstance(exc, BaseException) else None
        log.error("plugin hook failed", exc_info=exc_info, extra=attrs)

    async def _call_impl(self, name: str, impl: Any, kwargs: dict[str, Any]) -> Any:
        args = [kwargs[a] for a in impl.argnames]
        try:
            result = impl.function(*args)
        except Exception as exc:  # noqa: BLE001 - policy decides
            self._fail(name, impl.plugin_name, exc)
            return None
        if not inspect.isawaitable(result):
            # A plain function: no checkpoint, so no deadline could stop it;
            # most implementations are such, and skip the cancel scope.
            return result
        limit = self.time_limits[name]
        with trio.move_on_after(limit) as scope:
            try:
                return await result
            except trio.Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - policy decides
                self._fail(name, impl.plugin_name, exc)
                return None
        if scope.cancelled_caught:
            self._fail(name, impl.plugin_name, f"no answer within {limit:g}s")
        return None

    async def run(self, name: str, **kwargs: Any) -> Any:
        """Call an async-dispatched hook as its specification says.

        ``firstresult`` hooks return the first answer other than None (or
        None); the others return the list of answers that are not None.
        """
        if self._rule(name).firstresult:
            return await self.first(name, **kwargs)
        return await self.call(name, **kwargs)

    async def call(self, name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation; return the results that are not None."""
        self._rule(name, firstresult=False)
        results = []
        for impl in self._impls(name):
            result = await self._call_impl(name, impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def first(self, name: str, **kwargs: Any) -> Any:
        """Call implementations until one returns something other than None."""
        self._rule(name, firstresult=True)
        for impl in self._impls(name):
            result = await self._call_impl(name, impl, kwargs)
            if result is not None:
                return result
        return None

    # -- in-transaction hooks: called in the store's writer thread -----------

    def _call_sync_impl(self, name: str, impl: Any, kwargs: dict[str, Any]) -> Any:
        if "ctx" in impl.argnames and "ctx" not in kwargs:
            kwargs = {**kwargs, "ctx": self.context}
        args = [kwargs[a] for a in impl.argnames]
        conn = kwargs.get("conn")
        savepoint = f"hook_{abs(hash((name, impl.plugin_name)))}"
        if conn is not None and getattr(conn, "in_transaction", False):
            conn.execute(f"SAVEPOINT {savepoint}")
        else:
            savepoint = ""
        try:
            result = impl.function(*args)
            if inspect.isawaitable(result):
                close = getattr(result, "close", None)
                if close is not None:
                    close()
                raise TypeError(f"{name} runs inside a transaction and must not be async")
        except Exception as exc:  # noqa: BLE001 - policy decides
            if savepoint and conn is not None:
                conn.execute(f"ROLLBACK TO {savepoint}")
                conn.execute(f"RELEASE {savepoint}")
            self._fail(name, impl.plugin_name, exc)
            return None
        if savepoint and conn is not None:
            conn.execute(f"RELEASE {savepoint}")
        return result

    def run_sync(self, name: str, **kwargs: Any) -> Any:
        """In-transaction variant of :meth:`run`."""
        if self._rule(name).firstresult:
            return self.first_sync(name, **kwargs)
        return self.call_sync(name, **kwargs)

    def call_sync(self, name: str, **kwargs: Any) -> list[Any]:
        """In-transaction variant of :meth:`call` (no awaiting, no time limit)."""
        self._rule(name, firstresult=False)
        results = []
        for impl in self._impls(name):
            result = self._call_sync_impl(name, impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    def first_sync(self, name: str, **kwargs: Any) -> Any:
        """In-transaction variant of :meth:`first`."""
        self._rule(name, firstresult=True)
        for impl in self._impls(name):
            result = self._call_sync_impl(name, impl, kwargs)
            if result is not None:
                return result
        return None

    def setup(self, name: str, **kwargs: Any) -> list[Any]:
        """Call a start-up hook; results flattened when they are lists."""
        if self._rule(name).kind != "setup":
            raise TypeError(f"{name} is not a start-up hook")
        out: list[Any] = []
        for impl in self._impls(name):
            args = [kwargs[a] for a in impl.argnames]
            try:
                result = impl.function(*args)
            except Exception as exc:
                raise HookFailed(name, impl.plugin_name, exc) from exc
            if result is None:
                continue
            if isinstance(result, list | tuple):
                out.extend(result)
            else:
                out.append(result)
        return out
