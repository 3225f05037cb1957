"""Helpers for the operations tests: a webapi Send and raw control-socket clients."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import httpx

AUTH = ("mox@localhost", "moxmoxmox")


def send(ip: str, to: str, subject: str = "hi", text: str = "hello") -> httpx.Response:
    """A webapi Send from mox@localhost over real HTTP."""
    request = {"To": [{"Address": to}], "Subject": subject, "Text": text}
    return httpx.post(
        f"http://{ip}:1080/webapi/v0/Send", data={"request": json.dumps(request)}, auth=AUTH, timeout=30
    )


def ctl_connect(directory: Path) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # A blocking connect waits for room in the listen backlog (a timeout
    # would make a unix socket connect fail with EAGAIN instead).
    s.connect(str(directory / "ctl"))
    s.settimeout(30)
    return s


def ctl_exchange(directory: Path, payload: bytes) -> dict[str, Any]:
    """Send raw bytes, read the one-line JSON answer."""
    s = ctl_connect(directory)
    try:
        s.sendall(payload)
        buf = b""
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    answer: dict[str, Any] = json.loads(buf.split(b"\n", 1)[0])
    return answer
