"""CPU of a held webapi Send inside the application, without the HTTP server.

``bench/figures.py`` measures a Send end to end, HTTP parsing and writing
included. This runs a whole server in-process (real store on disk, real
worker threads) and calls the webapi's method path directly, as the HTTP
route does: access log, authentication, form, JSON, compose, DKIM, file
store and queue commit. It prints the CPU per Send of the whole process,
of the event-loop thread (the one that bounds throughput) and of each
group of worker threads, so a change in the application path shows without
the HTTP layer's noise.

    .venv/bin/python bench/send_app_bench.py [--sends 4000] [--concurrency 8] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from webapi_bench import encoded_request, request_body  # noqa: E402

from plugins.webapi.accesslog import logged_answer  # noqa: E402
from plugins.webapi.answers import RequestView  # noqa: E402
from plugins.webapi.service import WebapiService  # noqa: E402
from tests.support.inproc import localserve_config_dir, running_server  # noqa: E402

LIMITS = "\tmox:\n\t\tMaxOutgoingMessagesPerDay: 100000000\n\t\tMaxFirstTimeRecipientsPerDay: 100000000\n"


class _Body:
    """A request body delivered in one piece, as a small POST arrives."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self

    async def __anext__(self) -> bytes:
        if self._data is None:
            raise StopAsyncIteration
        data, self._data = self._data, None
        return data


class _Headers:
    """Request headers by case-insensitive name."""

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._by_name = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}

    def get(self, key: str) -> str | None:
        return self._by_name.get(key.lower())


def _thread_ticks() -> dict[str, int]:
    """CPU clock ticks so far per thread of this process, by thread name."""
    names = {str(t.native_id): t.name for t in threading.enumerate()}
    out: dict[str, int] = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        name = names.get(tid, "other").rstrip("0123456789").rstrip("-")
        out[name] = out.get(name, 0) + int(fields[11]) + int(fields[12])
    return out


async def run(sends: int, concurrency: int) -> dict[str, float]:
    """One round: ``sends`` held Sends at ``concurrency``; CPU ms per Send by thread group."""
    directory, ip = localserve_config_dir(
        Path(tempfile.mkdtemp(prefix="send-app-")), edit_domains=lambda s: s.replace("\tmox:\n", LIMITS, 1)
    )
    async with running_server(directory) as server:
        assert server.ctx is not None
        service = WebapiService(server.ctx, "/webapi/")
        body, http_headers = encoded_request(request_body(False))
        raw = [(b"host", f"{ip}:1080".encode()),
               *((k.lower().encode(), v.encode()) for k, v in http_headers.items()),
               (b"content-length", str(len(body)).encode())]
        headers = _Headers(raw)
        scope = {"type": "http", "method": "POST", "path": "/webapi/v0/Send", "scheme": "http",
                 "server": (ip, 1080), "client": ("127.0.0.1", 40000), "headers": raw, "root_path": ""}

        async def one() -> None:
            answer = await logged_answer(service, "Send", RequestView(scope, headers, _Body(body)))
            if answer.status != 200:
                raise SystemExit(f"Send failed: {answer.status} {answer.body!r}")

        for _ in range(min(200, sends)):  # warm up: keys loaded, caches filled
            await one()
        left = sends

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one()

        ticks0, cpu0, loop0, t0 = _thread_ticks(), time.process_time(), time.thread_time(), time.perf_counter()
        async with trio.open_nursery() as nursery:
            for _ in range(concurrency):
                nursery.start_soon(worker)
        ticks1, cpu1, loop1, t1 = _thread_ticks(), time.process_time(), time.thread_time(), time.perf_counter()
    hz = os.sysconf("SC_CLK_TCK")
    out = {"process": 1000 * (cpu1 - cpu0) / sends, "event loop": 1000 * (loop1 - loop0) / sends,
           "sends/s": sends / (t1 - t0)}
    for name, n in ticks1.items():
        if name not in ("MainThread", "other") and n - ticks0.get(name, 0) > 0:
            out[name] = 1000 * (n - ticks0.get(name, 0)) / hz / sends
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sends", type=int, default=4000)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3, help="rounds (medians are printed)")
    ap.add_argument("--log", default=None, help="write the server's log lines (traceauth, as localserve) here")
    args = ap.parse_args()
    if args.log:
        from core import mlog

        mlog.configure("traceauth", stream=open(args.log, "a"))  # noqa: SIM115 - the run's log
    rounds = [trio.run(run, args.sends, args.concurrency) for _ in range(args.runs)]
    print(f"held webapi Send in-process, concurrency {args.concurrency}, {args.sends} sends, "
          f"median of {args.runs} (CPU ms per Send)")
    for key in rounds[0]:
        values = [r.get(key, 0.0) for r in rounds]
        print(f"  {key:24s} {statistics.median(values):8.3f}   ({', '.join(f'{v:.3f}' for v in values)})")


if __name__ == "__main__":
    main()
