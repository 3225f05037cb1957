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
from collections.abc import Iterator
from typing import Any

import pluggy
import trio

from core.hookspecs import HOOK_KINDS

log = logging.getLogger("moxtrio.hooks")

DEFAULT_TIME_LIMIT = 30.0


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
        if self._is_verdict(name):
            raise HookFailed(name, plugin, exc) from (
                exc if isinstance(exc, BaseException) else None
            )
        log.error("observer hook failed, continuing: plugin=%s hook=%s error=%r", plugin, name, exc)

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
