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
#: A client gets this long to send its request line (the CLI sends it at
#: once; a silent client must not hold a connection forever).
READ_TIMEOUT = 10.0
WRITE_TIMEOUT = 30.0


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
    """The commands under ``prefix``; all top-level ones when none match it."""
    chosen = [c for c in commands if list(c.path[: len(prefix)]) == prefix] or list(commands)
    lines = [
        "  " + " ".join(c.path) + (f"  - {c.help}" if c.help else "")
        for c in sorted(chosen, key=lambda c: c.path)
    ]
    return "commands:\n" + "\n".join(lines) + "\n"


def unknown_command(commands: Sequence[CtlCommand], argv: list[str]) -> CtlResult:
    """The answer to a command no one offers: say so, then what exists."""
    words = " ".join(argv) or "(none)"
    known_prefix = any(c.path[:1] == tuple(argv[:1]) for c in commands)
    hint = "" if known_prefix else "run \"moxtrio help\" for the commands moxtrio itself offers\n"
    return CtlResult(f"unknown command: {words}\n{hint}" + usage(commands, argv[:1]), 2)


async def _read_line(stream: trio.abc.ReceiveStream, limit: int) -> bytes:
    """One request line; a line longer than ``limit`` is refused as it grows."""
    buf = bytearray()
    while b"\n" not in buf:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buf += chunk
        if len(buf) > limit and b"\n" not in buf[:limit + 1]:
            raise CtlError("request too large")
    return bytes(buf.split(b"\n", 1)[0])


def _parse_request(raw: bytes) -> tuple[list[str], str]:
    """argv and stdin from a request line; CtlError for anything else."""
    if not raw.strip():
        raise CtlError("empty request")
    try:
        request = json.loads(raw)
    except RecursionError:
        # The JSON decoder recurses per nesting level: 200,000 "[" would
        # otherwise escape as RecursionError.
        raise CtlError("request nested too deeply") from None
    except ValueError as exc:
        raise CtlError(f"invalid json: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("argv"), list):
        raise CtlError('request must be an object with an "argv" list')
    return [str(a) for a in request["argv"]], str(request.get("stdin", ""))


async def _answer(stream: trio.abc.SendStream, result: CtlResult) -> None:
    payload = json.dumps({"output": result.output, "exit": result.exit_code}).encode() + b"\n"
    with trio.move_on_after(WRITE_TIMEOUT):
        await stream.send_all(payload)


async def _handle(
    ctx: PluginContext, commands: Sequence[CtlCommand], stream: trio.SocketStream
) -> None:
    """Serve one control connection; nothing a client does reaches the server.

    Whatever goes wrong on this connection (a client hanging up at any point,
    garbage, an endless line, silence) ends this connection only: errors are
    logged and dropped here instead of escaping into the socket's nursery.
    """
    try:
        async with stream:
            await _serve_one(ctx, commands, stream)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        log.debug("control client went away: %r", exc)
    except Exception:  # noqa: BLE001 - one connection's failure stays with it
        log.exception("control connection failed")


async def _serve_one(
    ctx: PluginContext, commands: Sequence[CtlCommand], stream: trio.SocketStream
) -> None:
    try:
        raw = b""
        with trio.move_on_after(READ_TIMEOUT) as scope:
            raw = await _read_line(stream, MAX_REQUEST)
        if scope.cancelled_caught:
            raise CtlError(f"no request within {READ_TIMEOUT:g}s")
        argv, stdin = _parse_request(raw)
    except CtlError as exc:
        log.info("bad control request: %s", exc)
        await _answer(stream, CtlResult(f"bad request: {exc}\n", 2))
        return
    cmd, rest = find_command(commands, argv)
    if cmd is None:
        result = unknown_command(commands, argv)
    else:
        try:
            result = await cmd.handler(ctx, CtlRequest(rest, stdin))
        except Exception as exc:  # noqa: BLE001 - reported to the admin, server goes on
            log.exception("control command failed: %s", " ".join(argv))
            result = CtlResult(f"error: {exc}\n", 1)
    await _answer(stream, result)


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
    sock.listen(128)
    listener = trio.SocketListener(sock)
    try:
        async with trio.open_nursery() as nursery:
            task_status.started()
            while True:
                try:
                    stream = await listener.accept()
                except OSError as exc:
                    # Out of file descriptors or memory: wait for some to be
                    # freed instead of ending the server.
                    log.warning("control socket accept failed: %s", exc)
                    await trio.sleep(0.1)
                    continue
                nursery.start_soon(_handle, ctx, commands, stream)
    finally:
        with trio.CancelScope(shield=True):
            await listener.aclose()
            await tpath.unlink(missing_ok=True)


async def _socket_alive(path: Path) -> bool:
    """Whether a server answers on the socket (asked politely with ``ping``).

    A refused connection is a stale socket from a killed server. Something
    that accepts but does not answer is treated as alive: better to refuse
    to start than to take a running server's socket away.
    """
    try:
        stream = await trio.open_unix_socket(str(path))
    except OSError:
        return False
    async with stream:
        with trio.move_on_after(5):
            try:
                await stream.send_all(json.dumps({"argv": ["ping"]}).encode() + b"\n")
                await _read_line(stream, 65536)
            except (trio.BrokenResourceError, CtlError, OSError):
                pass
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
