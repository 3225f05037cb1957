"""Long-lived worker threads for the short blocking jobs of every request.

A webapi Send or an SMTP submission makes a few short blocking calls (a
SQLite read, writing and fsyncing the message file). ``trio.to_thread.run_sync``
is made for any blocking call: per job it takes a capacity limiter (one
extra scheduling round), copies the context, names the OS thread and hands the
result back through two callbacks. On the trio thread, which bounds the
server's throughput, that glue costs more than the SQLite read itself.

A :class:`WorkerPool` keeps its threads: a job is put on a queue with the
caller's trio token, an idle thread runs it and reschedules the waiting task
directly. Like ``trio.to_thread.run_sync`` (without ``abandon_on_cancel``)
a job once queued cannot be cancelled: the caller always learns its outcome.
Jobs run in the order they were queued; at most ``max_threads`` run at once.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

import outcome
import trio

log = logging.getLogger("moxtrio.workers")

T = TypeVar("T")

_Job = tuple[Callable[[], Any], trio.lowlevel.Task, trio.lowlevel.TrioToken]


class PoolClosed(Exception):
    """The pool was closed; it takes no more jobs."""


def _abort_failed(_: Any) -> trio.lowlevel.Abort:
    return trio.lowlevel.Abort.FAILED


class WorkerPool:
    """Up to ``max_threads`` threads, started on demand and kept until :meth:`close`.

    ``on_exit`` runs in each thread as it ends (a reader pool closes the
    connection that thread opened).
    """

    def __init__(self, name: str, max_threads: int, *, on_exit: Callable[[], None] | None = None) -> None:
        if max_threads < 1:
            raise ValueError("a worker pool needs at least one thread")
        self.name = name
        self.max_threads = max_threads
        self._on_exit = on_exit
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._jobs: deque[_Job] = deque()
        #: Threads waiting for a job and not yet promised one by a notify.
        self._idle = 0
        self._threads: list[threading.Thread] = []
        self._closed = False

    async def run_sync(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` in a pool thread (in a copy of the caller's context); return its result."""
        await trio.lowlevel.checkpoint_if_cancelled()
        ctx = contextvars.copy_context()
        job: _Job = (
            lambda: ctx.run(fn, *args),
            trio.lowlevel.current_task(),
            trio.lowlevel.current_trio_token(),
        )
        with self._lock:
            if self._closed:
                raise PoolClosed(f"worker pool {self.name} is closed")
            self._jobs.append(job)
            if self._idle:
                self._idle -= 1
                self._cond.notify()
            elif len(self._threads) < self.max_threads:
                t = threading.Thread(
                    target=self._main, name=f"{self.name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(t)
                t.start()
        result: T = await trio.lowlevel.wait_task_rescheduled(_abort_failed)
        return result

    def _main(self) -> None:
        try:
            while True:
                with self._lock:
                    while not self._jobs:
                        if self._closed:
                            return
                        self._idle += 1
                        self._cond.wait()
                    fn, task, token = self._jobs.popleft()
                result = outcome.capture(fn)
                try:
                    token.run_sync_soon(trio.lowlevel.reschedule, task, result)
                except trio.RunFinishedError:
                    log.error("worker pool %s: trio run finished before a job returned", self.name)
        finally:
            if self._on_exit is not None:
                try:
                    self._on_exit()
                except Exception:  # noqa: BLE001 - a thread's clean-up must not hide others
                    log.exception("worker pool %s: thread clean-up failed", self.name)

    def close(self) -> list[threading.Thread]:
        """Take no more jobs; threads end once the queued ones are done. Returns them to join."""
        with self._lock:
            self._closed = True
            self._idle = 0
            self._cond.notify_all()
            return list(self._threads)

    async def aclose(self) -> None:
        """:meth:`close`, then wait (shielded) until every thread has ended."""
        threads = self.close()

        def join() -> None:
            for t in threads:
                t.join()

        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(join)


#: For short blocking file work of requests (writing and fsyncing a message
#: file). Process-wide: its threads serve every trio run, each job carries
#: its caller's token.
BLOCKING = WorkerPool("moxtrio-blocking", 16)
