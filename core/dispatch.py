"""Calling pluggy hooks from trio, with our own failure and first-result rules.

pluggy is synchronous: ``pm.hook.x()`` does not await, and with
``firstresult=True`` it would stop at an async implementation's un-awaited
coroutine. So pluggy keeps registration, specs and ordering, and this module
calls the implementations itself (as datasette's ``await_me_maybe`` does):
in pluggy's call order, awaiting what is awaitable, under a per-plugin time
limit, with verdict hooks failing closed and observer hooks failing open
(see :mod:`core.hookspecs`).
"""

from __future__ import annotations

import inspect
import logging
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

import pluggy
import trio

from core.hookspecs import HOOK_KINDS
from core.mlog import kv

log = logging.getLogger("moxtrio.hooks")

DEFAULT_TIME_LIMIT = 30.0
#: A repeated plugin failure is logged with its traceback once per this many seconds.
REPORT_INTERVAL = 300.0


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
    """Calls hook implementations in order; async-aware; policy per hook kind."""

    def __init__(
        self,
        pm: pluggy.PluginManager,
        time_limit: float = DEFAULT_TIME_LIMIT,
        time_limits: dict[str, float] | None = None,
    ) -> None:
        self.pm = pm
        self.time_limit = time_limit
        # Per-plugin limits, e.g. a slow third-party plugin given more time.
        self.time_limits = dict(time_limits or {})
        self._reported: dict[tuple[str, str, str, str], float] = {}

    def _impls(self, name: str) -> Iterator[Any]:
        caller = getattr(self.pm.hook, name)
        # pluggy runs the list back to front: last registered / tryfirst first.
        for impl in reversed(caller.get_hookimpls()):
            if impl.hookwrapper or impl.wrapper:
                continue
            yield impl

    def _is_verdict(self, name: str) -> bool:
        return HOOK_KINDS.get(name, "observer") != "observer"

    def _fail(self, name: str, plugin: str, exc: BaseException | str) -> None:
        self._report(name, plugin, exc)
        if self._is_verdict(name):
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
        kind = "verdict, failing closed" if self._is_verdict(name) else "observer, continuing"
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
        limit = self.time_limits.get(impl.plugin_name, self.time_limit)
        with trio.move_on_after(limit) as scope:
            try:
                result = impl.function(*args)
                if inspect.isawaitable(result):
                    result = await result
                return result
            except trio.Cancelled:
                raise
            except Exception as exc:  # noqa: BLE001 - policy decides
                self._fail(name, impl.plugin_name, exc)
                return None
        if scope.cancelled_caught:
            self._fail(name, impl.plugin_name, f"no answer within {limit:g}s")
        return None

    async def call(self, name: str, **kwargs: Any) -> list[Any]:
        """Call every implementation; return the results that are not None."""
        results = []
        for impl in self._impls(name):
            result = await self._call_impl(name, impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def first(self, name: str, **kwargs: Any) -> Any:
        """Call implementations until one returns something other than None."""
        for impl in self._impls(name):
            result = await self._call_impl(name, impl, kwargs)
            if result is not None:
                return result
        return None

    # -- in-transaction hooks: called in the store's writer thread -----------

    def _call_sync_impl(self, name: str, impl: Any, kwargs: dict[str, Any]) -> Any:
        args = [kwargs[a] for a in impl.argnames]
        conn = kwargs.get("conn")
        savepoint = f"hook_{abs(hash((name, impl.plugin_name)))}"
        if isinstance(conn, sqlite3.Connection) and conn.in_transaction:
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

    def call_sync(self, name: str, **kwargs: Any) -> list[Any]:
        """In-transaction variant of :meth:`call` (no awaiting, no time limit)."""
        results = []
        for impl in self._impls(name):
            result = self._call_sync_impl(name, impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    def first_sync(self, name: str, **kwargs: Any) -> Any:
        """In-transaction variant of :meth:`first`."""
        for impl in self._impls(name):
            result = self._call_sync_impl(name, impl, kwargs)
            if result is not None:
                return result
        return None

    def setup(self, name: str, **kwargs: Any) -> list[Any]:
        """Call a start-up hook; results flattened when they are lists."""
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
