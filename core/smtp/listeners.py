"""Start the SMTP, Submission and Submissions listeners the config enables.

Each enabled service on each IP of each listener gets one ``serve_smtp``
task; all share one set of per-IP limits (mox keeps them process-wide), and
the auth-failure limiter is the process-wide one the webapi uses too.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from pathlib import Path
from typing import Any

import trio

from core.plugin_api import PluginContext
from core.smtp.backend import CoreSessionHandler
from core.smtp.handler import ListenerKind
from core.smtp.limits import ConnectionLimits, WindowLimiter, auth_failure_limiter
from core.smtp.server import serve_smtp
from core.smtp.session import SessionConfig
from core.tls import listener_ssl_context

log = logging.getLogger("moxtrio.smtp")

SERVICES: tuple[tuple[str, ListenerKind], ...] = (
    ("SMTP", "smtp"),
    ("Submission", "submission"),
    ("Submissions", "submissions"),
)


class LoopbackExemptLimiter:
    """localserve: the queue delivers to its own listener from 127.0.0.1 for
    every message; mox throttles that at 300 a minute (observed), which would
    turn a fast local queue into ``delayed`` events. Loopback peers are exempt
    from the connection limits in localserve only."""

    def __init__(self, inner: WindowLimiter) -> None:
        self._inner = inner

    def add(self, ip: Any, n: int = 1, now: float | None = None) -> bool:
        if ipaddress.ip_address(str(ip)).is_loopback:
            return True
        return self._inner.add(ip, n, now)

    def can_add(self, ip: Any, n: int = 1, now: float | None = None) -> bool:
        if ipaddress.ip_address(str(ip)).is_loopback:
            return True
        return self._inner.can_add(ip, n, now)


def shared_auth_limiter(ctx: PluginContext) -> WindowLimiter:
    """The process-wide failed-login limiter (SMTP AUTH and webapi basic auth)."""
    limiter = ctx.services.get("auth_limiter")
    if limiter is None:
        limiter = auth_failure_limiter()
        ctx.services["auth_limiter"] = limiter
    return limiter


def session_config(ctx: PluginContext, listener: Any, kind: ListenerKind, tls: ssl.SSLContext | None) -> SessionConfig:
    static = ctx.config.static
    hostname = getattr(listener, "Hostname", "") or static.Hostname
    cfg = SessionConfig(
        hostname=hostname,
        max_message_size=listener.smtp_max_message_size,
        pedantic=bool(static.Pedantic),
        tmp_dir=str(Path(ctx.config.data_dir) / "tmp"),
    )
    if kind == "smtp":
        cfg.ssl_context = None if listener.SMTP.NoSTARTTLS else tls
        cfg.require_tls_for_delivery = bool(listener.SMTP.RequireSTARTTLS)
        cfg.requiretls_enabled = not listener.SMTP.NoRequireTLS
    elif kind == "submission":
        cfg.ssl_context = tls
        required = not listener.Submission.NoRequireSTARTTLS
        cfg.require_tls_for_auth = required
        cfg.require_tls_for_delivery = required
    else:
        cfg.require_tls_for_auth = True
        cfg.require_tls_for_delivery = True
    return cfg


async def start_smtp_listeners(
    ctx: PluginContext, nursery: trio.Nursery, shutdown: trio.Event
) -> list[str]:
    """Start every enabled SMTP service; return ``"kind ip:port"`` lines."""
    limits = ConnectionLimits(auth_failures=shared_auth_limiter(ctx))
    if ctx.localserve:
        limits.rate = LoopbackExemptLimiter(limits.rate)  # type: ignore[assignment]
        limits.concurrent = LoopbackExemptLimiter(limits.concurrent)  # type: ignore[assignment]
    await trio.Path(ctx.config.data_dir, "tmp").mkdir(parents=True, exist_ok=True)
    started: list[str] = []
    for name, listener in sorted(ctx.config.static.Listeners.items()):
        if not any(listener.enabled(key) for key, _ in SERVICES):
            continue
        tls = await trio.to_thread.run_sync(listener_ssl_context, ctx.config, name)
        for key, kind in SERVICES:
            if not listener.enabled(key):
                continue
            if kind == "submissions" and tls is None:
                log.warning("listener %s: submissions needs a TLS certificate, skipped", name)
                continue
            port = listener.port(key)
            cfg = session_config(ctx, listener, kind, tls)
            for ip in listener.IPs:

                def factory(name: str = name, kind: ListenerKind = kind) -> CoreSessionHandler:
                    return CoreSessionHandler(ctx, name, kind)

                ports = await nursery.start(
                    _serve,
                    ip,
                    port,
                    factory,
                    cfg,
                    tls if kind == "submissions" else cfg.ssl_context,
                    kind == "submissions",
                    limits,
                    shutdown,
                )
                host = f"[{ip}]" if ":" in ip else ip
                started += [f"{kind} {host}:{p}" for p in ports]
    return started


async def _serve(
    ip: str,
    port: int,
    factory: Any,
    cfg: SessionConfig,
    ssl_context: ssl.SSLContext | None,
    implicit_tls: bool,
    limits: ConnectionLimits,
    shutdown: trio.Event,
    *,
    task_status: trio.TaskStatus[list[int]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_smtp(
        ip, port, factory, config=cfg, ssl_context=ssl_context, implicit_tls=implicit_tls,
        limits=limits, shutdown=shutdown, task_status=task_status,
    )
