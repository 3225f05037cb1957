"""Large multipart uploads are streamed: the server's memory stays bounded.

The server runs as a child process so its peak resident size (``VmHWM``
in /proc) measures only what serving the uploads cost.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.procs import localserve

AUTH = ("mox@localhost", "moxmoxmox")
UPLOAD = 85 * 1000 * 1000
ACCEPTED = 50 * 1000 * 1000
PIECE = 1 << 20
BOUNDARY = "memtestboundary0123456789"


def vm_hwm_mib(pid: int) -> float:
    """Peak resident set size of a process, from /proc/<pid>/status."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


def multipart_body(size: int, to: str = "mox@localhost") -> tuple[int, Iterator[bytes]]:
    """A Send form with one attached file of ``size`` bytes, as (length, chunks)."""
    request = json.dumps({"To": [{"Address": to}], "Text": "big"})
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"request\"\r\n\r\n{request}\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"attachedfile\"; filename=\"big.bin\"\r\n"
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    piece = bytes(range(256)) * (PIECE // 256)

    def chunks() -> Iterator[bytes]:
        yield head
        left = size
        while left > 0:
            yield piece[: min(left, PIECE)]
            left -= PIECE
        yield tail

    return len(head) + size + len(tail), chunks()


@pytest.mark.slow
def test_four_concurrent_85mb_uploads_stay_under_150mib(tmp_path: Path) -> None:
    with localserve(tmp_path) as server:
        url = f"http://{server.ip}:1080/webapi/v0/Send"
        answers: list[tuple[int, str]] = []

        def upload(size: int = UPLOAD) -> None:
            length, chunks = multipart_body(size)
            headers = {
                "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
                "Content-Length": str(length),
            }
            with httpx.Client(timeout=120) as client:
                r = client.post(url, content=chunks, headers=headers, auth=AUTH)
                answers.append((r.status_code, r.text))

        threads = [threading.Thread(target=upload) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        assert not any(t.is_alive() for t in threads)
        peak = vm_hwm_mib(server.proc.pid)
        # Still serving, and every upload got mox's answer for a too large message.
        assert len(answers) == 4
        for status, text in answers:
            assert status == 400, text
            assert json.loads(text) == {"Code": "messageTooLarge", "Message": "message too large"}
        leftovers = list((server.directory / "msg" / "tmp").glob("upload-*"))
        assert leftovers == []
        assert peak < 150, f"server peak RSS {peak:.0f} MiB"

        # A large upload within the limit is composed from its spooled file
        # and queued, still within the bound.
        answers.clear()
        upload(ACCEPTED)
        peak = vm_hwm_mib(server.proc.pid)
        status, text = answers[0]
        assert status == 200, text
        assert json.loads(text)["Submissions"][0]["Address"] == "mox@localhost"
        assert list((server.directory / "msg" / "tmp").glob("*")) == []
        assert peak < 150, f"server peak RSS {peak:.0f} MiB after an accepted upload"
