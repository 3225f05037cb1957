"""The control socket between the ``moxtrio`` command and the running server.

A unix socket at ``<DataDir>/ctl`` (where mox keeps its own). One request per
connection: the client sends one JSON line ``{"argv": [...], "stdin": "..."}``
and the server answers with one JSON line ``{"output": "...", "exit": N}``.
Commands are :class:`core.plugin_api.CtlCommand` objects from the core and
from plugins (``moxtrio_ctl_commands``); the longest matching word path wins.
The socket is only reachable by users who can open it (mode 0600): the
commands are the administrator's.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path

import trio

from core.plugin_api import CtlCommand, CtlRequest, CtlResult, PluginContext

log = logging.getLogger("moxtrio.ctl")

MAX_REQUEST = 16 * 1024 * 1024


class CtlError(Exception):
    """The server could not be reached or answered nonsense."""


def socket_path(data_dir: Path) -> Path:
    return Path(data_dir) / "ctl"


def find_command(
    commands: Sequence[CtlCommand], argv: list[str]
) -> tuple[CtlCommand | None, list[str]]:
    """The command whose path is the longest prefix of argv, and the rest."""
    best: CtlCommand | None = None
    for cmd in commands:
        n = len(cmd.path)
        if tuple(argv[:n]) == cmd.path and (best is None or n > len(best.path)):
            best = cmd
    if best is None:
        return None, argv
    return best, argv[len(best.path) :]


def usage(commands: Sequence[CtlCommand], prefix: list[str]) -> str:
    lines = [
        "  " + " ".join(c.path) + (f"  - {c.help}" if c.help else "")
        for c in sorted(commands, key=lambda c: c.path)
        if list(c.path[: len(prefix)]) == prefix
    ]
    return "commands:\n" + "\n".join(lines) + "\n"


async def _read_line(stream: trio.abc.ReceiveStream, limit: int) -> bytes:
    buf = bytearray()
    while b"\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit:
            raise CtlError("request too large")
    return bytes(buf.split(b"\n", 1)[0])


async def _handle(
    ctx: PluginContext, commands: Sequence[CtlCommand], stream: trio.SocketStream
) -> None:
    async with stream:
        try:
            with trio.fail_after(30):
                raw = await _read_line(stream, MAX_REQUEST)
            request = json.loads(raw)
            argv = [str(a) for a in request["argv"]]
            stdin = str(request.get("stdin", ""))
        except (CtlError, ValueError, KeyError, TypeError, trio.TooSlowError) as exc:
            await stream.send_all(json.dumps({"output": f"bad request: {exc}\n", "exit": 2}).encode() + b"\n")
            return
        cmd, rest = find_command(commands, argv)
        if cmd is None:
            result = CtlResult(f"unknown command: {' '.join(argv)}\n" + usage(commands, argv[:1]), 2)
        else:
            try:
                result = await cmd.handler(ctx, CtlRequest(rest, stdin))
            except Exception as exc:  # noqa: BLE001 - reported to the admin, server goes on
                log.exception("control command failed: %s", " ".join(argv))
                result = CtlResult(f"error: {exc}\n", 1)
        payload = json.dumps({"output": result.output, "exit": result.exit_code}).encode() + b"\n"
        try:
            await stream.send_all(payload)
        except trio.BrokenResourceError:
            pass


async def serve_ctl(
    ctx: PluginContext,
    path: Path,
    commands: Sequence[CtlCommand],
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Listen on the unix socket and run commands until cancelled."""
    tpath = trio.Path(path)
    if await tpath.exists() or await tpath.is_symlink():
        # A stale socket from a killed server; refuse if a live one answers.
        if await _socket_alive(path):
            raise CtlError(f"another server is running with control socket {path}")
        await tpath.unlink()
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        await sock.bind(str(path))
    finally:
        os.umask(old_umask)
    sock.listen(16)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                stream = await listener.accept()
                nursery.start_soon(_handle, ctx, commands, stream)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
            await tpath.unlink(missing_ok=True)


async def _socket_alive(path: Path) -> bool:
    try:
        stream = await trio.open_unix_socket(str(path))
    except OSError:
        return False
    await stream.aclose()
    return True


def call(path: Path, argv: list[str], stdin: str = "", timeout: float = 300.0) -> CtlResult:
    """Blocking client used by the CLI: send argv, return the server's answer."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        try:
            s.connect(str(path))
        except OSError as exc:
            raise CtlError(
                f"cannot connect to control socket {path}: {exc} (is the server running?)"
            ) from exc
        s.sendall(json.dumps({"argv": argv, "stdin": stdin}).encode() + b"\n")
        buf = bytearray()
        while b"\n" not in buf:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    finally:
        s.close()
    try:
        answer = json.loads(bytes(buf).split(b"\n", 1)[0])
        return CtlResult(str(answer["output"]), int(answer["exit"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise CtlError(f"bad answer from server: {exc}") from exc
