"""SMTP listeners: accept connections, apply per-IP limits, run one session each.

One nursery per listener holds the accept loop(s) and every connection's
task, so no task outlives the listener. A connection's failures are logged
and end only that connection; the accept loop survives transient accept
errors (EMFILE and friends) by backing off briefly.

Per-IP limits follow mox: new connections per minute and concurrent
connections per IP class, and on submission listeners a client IP whose
auth-failure budget is used up is refused at connect
(``421 4.7.0 too many auth failures``). For implicit TLS (submissions) the
refusal is sent over TLS, as mox does.
"""

from __future__ import annotations

import dataclasses
import logging
import ssl
from collections.abc import Callable

import trio

from core.smtp.handler import SessionHandler, SessionInfo
from core.smtp.limits import ConnectionLimits
from core.smtp.reply import Reply, new_conn_id
from core.smtp.session import Session, SessionConfig

log = logging.getLogger("moxtrio.smtp")

DRAIN_SECONDS = 1.0
DRAIN_BYTES = 256 * 1024


async def serve_smtp(
    listen_ip: str,
    port: int,
    handler_factory: Callable[[], SessionHandler],
    *,
    config: SessionConfig | None = None,
    ssl_context: ssl.SSLContext | None = None,
    implicit_tls: bool = False,
    limits: ConnectionLimits | None,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve SMTP on ``listen_ip:port`` until cancelled or ``shutdown`` is set.

    ``handler_factory()`` is called once per accepted connection (after the
    limit checks) and its ``listener_kind`` decides smtp/submission rules.
    ``ssl_context`` is used for implicit TLS when ``implicit_tls`` is true,
    otherwise it is offered as STARTTLS. ``limits`` should be one instance
    shared by all listeners (None disables per-IP limits). ``task_status``
    gets the list of bound ports (bind port 0 in tests).

    On ``shutdown``: stop accepting, idle sessions get ``421 4.3.2 shutting
    down`` at once, busy ones at their next command; returns when all
    connections are done (the caller bounds that with its own deadline).
    """
    base = config or SessionConfig()
    if implicit_tls:
        if ssl_context is None:
            raise ValueError("implicit_tls needs an ssl_context")
        session_config = dataclasses.replace(base, ssl_context=None)
    else:
        session_config = dataclasses.replace(base, ssl_context=ssl_context or base.ssl_context)
    listeners = await trio.open_tcp_listeners(port, host=listen_ip)
    sessions: set[Session] = set()
    ports = [ln.socket.getsockname()[1] for ln in listeners]
    async with trio.open_nursery() as nursery:

        async def handle(stream: trio.SocketStream) -> None:
            await _handle_connection(
                stream,
                handler_factory,
                session_config,
                ssl_context if implicit_tls else None,
                limits,
                sessions,
                shutdown,
            )

        for ln in listeners:
            nursery.start_soon(_accept_loop, ln, nursery, handle)
        if shutdown is not None:
            nursery.start_soon(_watch_shutdown, shutdown, listeners, sessions)
        task_status.started(ports)


async def _accept_loop(
    listener: trio.SocketListener,
    nursery: trio.Nursery,
    handle: Callable[[trio.SocketStream], object],
) -> None:
    while True:
        try:
            stream = await listener.accept()
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            return
        except OSError as e:
            # EMFILE/ENFILE/ENOBUFS etc.: transient; don't spin, don't die.
            log.error("smtp accept failed: %s", e)
            await trio.sleep(0.1)
            continue
        nursery.start_soon(handle, stream)  # type: ignore[arg-type]


async def _watch_shutdown(
    shutdown: trio.Event, listeners: list[trio.SocketListener], sessions: set[Session]
) -> None:
    await shutdown.wait()
    for ln in listeners:
        await ln.aclose()
    for s in list(sessions):
        s.request_shutdown()


def _sockaddr(stream: trio.SocketStream, peer: bool) -> tuple[str, int]:
    addr = stream.socket.getpeername() if peer else stream.socket.getsockname()
    return str(addr[0]), int(addr[1])


async def _handle_connection(
    raw: trio.SocketStream,
    handler_factory: Callable[[], SessionHandler],
    config: SessionConfig,
    implicit_tls_context: ssl.SSLContext | None,
    limits: ConnectionLimits | None,
    sessions: set[Session],
    shutdown: trio.Event | None,
) -> None:
    """Everything for one connection; never raises (except Cancelled)."""
    stream: trio.abc.Stream = raw
    counted = False
    ip = ""
    try:
        remote_ip, remote_port = _sockaddr(raw, True)
        local_ip, local_port = _sockaddr(raw, False)
        ip = remote_ip
        conn_id = new_conn_id()
        handler = handler_factory()
        kind = handler.listener_kind
        refuse: Reply | None = None
        if limits is not None:
            if not limits.rate.add(ip):
                refuse = Reply(
                    421,
                    "4.7.0",
                    "connection rate from your ip or network too high, slow down please",
                    with_id=False,
                )
            elif (
                kind != "smtp"
                and limits.auth_failures is not None
                and not limits.auth_failures.allowed(ip)
            ):
                log.info("refusing smtp connection from %s: too many auth failures", ip)
                refuse = Reply(421, "4.7.0", "too many auth failures", with_id=False)
            elif not limits.concurrent.add(ip):
                refuse = Reply(
                    421, "4.7.0", "too many open connections from your ip or network", with_id=False
                )
            else:
                counted = True
        tls_version = tls_cipher = ""
        if implicit_tls_context is not None:
            tls_stream = trio.SSLStream(raw, implicit_tls_context, server_side=True)
            stream = tls_stream
            with trio.fail_after(config.tls_handshake_timeout):
                await tls_stream.do_handshake()
            tls_version = str(tls_stream.version() or "")
            cipher = tls_stream.cipher()
            tls_cipher = cipher[0] if cipher else ""
        if refuse is not None:
            with trio.move_on_after(5):
                await stream.send_all(refuse.render(conn_id))
            return
        info = SessionInfo(
            conn_id=conn_id,
            listener_kind=kind,
            hostname=config.hostname,
            remote_ip=remote_ip,
            remote_port=remote_port,
            local_ip=local_ip,
            local_port=local_port,
            tls=implicit_tls_context is not None,
            tls_version=tls_version,
            tls_cipher=tls_cipher,
        )
        session = Session(
            stream, handler, config, info, auth_limiter=limits.auth_failures if limits else None
        )
        sessions.add(session)
        if shutdown is not None and shutdown.is_set():
            session.request_shutdown()
        log.info("new smtp connection %s from %s:%d (%s)", conn_id, remote_ip, remote_port, kind)
        try:
            await session.run()
        finally:
            sessions.discard(session)
            stream = session.stream
        log.info("smtp connection %s closed", conn_id)
    except (trio.BrokenResourceError, trio.ClosedResourceError, trio.TooSlowError, OSError) as e:
        log.info("smtp connection from %s ended: %r", ip or "?", e)
    except Exception:
        log.exception("unhandled error in smtp connection from %s", ip or "?")
    finally:
        if counted and limits is not None:
            limits.concurrent.add(ip, -1)
        await _close(stream, raw)


async def _close(stream: trio.abc.Stream, raw: trio.SocketStream) -> None:
    """Close politely if we can (TLS close_notify / FIN, then drain what the
    client still sends so our last reply isn't lost to a TCP reset), but never
    hang: bounded in time, and forceful when cancelled."""
    try:
        with trio.move_on_after(DRAIN_SECONDS):
            if stream is not raw:
                await stream.aclose()
            else:
                await raw.send_eof()
                drained = 0
                while drained < DRAIN_BYTES:
                    data = await raw.receive_some(65536)
                    if not data:
                        break
                    drained += len(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
        pass
    except Exception:
        log.exception("closing smtp connection")
    finally:
        await trio.aclose_forcefully(raw)
