"""core.workers: results and errors come back, the thread bound holds, a queued job is not cancelled."""

from __future__ import annotations

import contextvars
import threading

import pytest
import trio

from core.workers import PoolClosed, WorkerPool

_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("_VAR", default="unset")


def test_results_errors_and_context_come_back() -> None:
    pool = WorkerPool("t-basic", 2)

    def fail() -> None:
        raise ValueError("boom")

    async def main() -> None:
        _VAR.set("caller")
        assert await pool.run_sync(lambda a, b: a + b, 2, 3) == 5
        assert await pool.run_sync(lambda: threading.current_thread().name) == "t-basic-0"
        assert await pool.run_sync(_VAR.get) == "caller"
        with pytest.raises(ValueError, match="boom"):
            await pool.run_sync(fail)
        await pool.aclose()
        with pytest.raises(PoolClosed):
            await pool.run_sync(lambda: 1)

    trio.run(main)


def test_at_most_max_threads_run_and_queued_jobs_all_finish() -> None:
    pool = WorkerPool("t-bound", 3)
    lock = threading.Lock()
    running = 0
    peak = 0
    names: set[str] = set()
    gate = threading.Event()

    def job(i: int) -> int:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
            names.add(threading.current_thread().name)
        gate.wait(5)
        with lock:
            running -= 1
        return i * 2

    async def main() -> None:
        results: dict[int, int] = {}

        async def one(i: int) -> None:
            results[i] = await pool.run_sync(job, i)

        async with trio.open_nursery() as nursery:
            for i in range(12):
                nursery.start_soon(one, i)
            with trio.fail_after(5):
                while running < 3:
                    await trio.sleep(0.01)
            gate.set()
        assert results == {i: i * 2 for i in range(12)}
        await pool.aclose()

    trio.run(main)
    assert peak == 3
    assert names == {"t-bound-0", "t-bound-1", "t-bound-2"}


def test_a_queued_job_finishes_even_when_its_caller_is_cancelled() -> None:
    pool = WorkerPool("t-cancel", 1)
    started = threading.Event()
    release = threading.Event()
    done: list[str] = []

    def slow() -> str:
        started.set()
        release.wait(5)
        done.append("ran")
        return "ok"

    async def main() -> None:
        got: list[str] = []
        with trio.CancelScope() as scope:
            async def call() -> None:
                got.append(await pool.run_sync(slow))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(call)
                await trio.to_thread.run_sync(started.wait, 5)
                scope.cancel()
                release.set()
        # The caller was not interrupted: it got the job's result.
        assert got == ["ok"]
        assert done == ["ran"]
        await pool.aclose()

    trio.run(main)


def test_the_pool_serves_successive_trio_runs() -> None:
    pool = WorkerPool("t-runs", 1)

    async def main(n: int) -> int:
        return await pool.run_sync(lambda: n + 1)

    assert trio.run(main, 1) == 2
    assert trio.run(main, 41) == 42
    for t in pool.close():
        t.join(5)
        assert not t.is_alive()


def test_on_exit_runs_in_every_thread_at_close() -> None:
    ended: list[str] = []
    pool = WorkerPool("t-exit", 2, on_exit=lambda: ended.append(threading.current_thread().name))
    gate = threading.Event()

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            for _ in range(2):
                nursery.start_soon(pool.run_sync, gate.wait, 5)
            await trio.sleep(0.05)
            gate.set()
        await pool.aclose()

    trio.run(main)
    assert sorted(ended) == ["t-exit-0", "t-exit-1"]
