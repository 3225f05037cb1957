"""Start the SMTP, Submission and Submissions listeners the config enables.

Each enabled service on each IP of each listener gets one ``serve_smtp``
task; all share one set of per-IP limits (mox keeps them process-wide), and
the failed-login limiter is the server's one (``ctx.login_limiter``), shared with the webapi.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import ssl
from pathlib import Path
from typing import Any

import trio

from core.plugin_api import PluginConfigError, PluginContext
from core.smtp.backend import CoreSessionHandler
from core.smtp.handler import ListenerKind
from core.smtp.limits import ConnectionLimits, WindowLimiter
from core.smtp.server import serve_smtp
from core.smtp.session import SessionConfig
from core.store import accounts as store_accounts
from core.tls import listener_ssl_context

log = logging.getLogger("moxtrio.smtp")

RATE_LIMITS = (300, 900, 2700)  # new connections per minute (mox)
CONCURRENCY_LIMITS = (30, 90, 270)  # open connections (mox)

SERVICES: tuple[tuple[str, ListenerKind], ...] = (
    ("SMTP", "smtp"),
    ("Submission", "submission"),
    ("Submissions", "submissions"),
)


class LoopbackExemptLimiter:
    """When the queue delivers to our own listener (from 127.0.0.1, for every
    message), mox's limit of 300 connections a minute (observed) would turn a
    fast local queue into ``delayed`` events. Loopback peers are then exempt
    from the connection limits; otherwise they are not."""

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


def _triple(settings: dict[str, Any], key: str, default: tuple[int, int, int]) -> tuple[int, int, int]:
    value = settings.get(key)
    if value is None:
        return default
    if not (isinstance(value, list) and len(value) == 3 and all(isinstance(v, int) and v > 0 for v in value)):
        raise PluginConfigError(f"smtp.yaml: {key} must be three positive integers (per IP, /26 or /48, /21 or /32)")
    return (value[0], value[1], value[2])


def _seconds(settings: dict[str, Any], key: str, default: float, *, zero_ok: bool = False) -> float:
    value = settings.get(key, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0 or (value == 0 and not zero_ok):
        what = "a non-negative" if zero_ok else "a positive"
        raise PluginConfigError(f"smtp.yaml: {key} must be {what} number of seconds")
    return float(value)


def connection_limits(ctx: PluginContext) -> ConnectionLimits:
    """mox's per-IP connection limits, adjustable in ``<config dir>/plugins/smtp.yaml``
    (``ConnectionsPerMinute`` and ``ConcurrentConnections``, three numbers each:
    per address, per /26 (IPv6 /48), per /21 (IPv6 /32))."""
    settings = ctx.plugin_settings("smtp")
    limits = ConnectionLimits(
        rate=WindowLimiter([(60, _triple(settings, "ConnectionsPerMinute", RATE_LIMITS))]),
        concurrent=WindowLimiter([(None, _triple(settings, "ConcurrentConnections", CONCURRENCY_LIMITS))]),
        auth_failures=ctx.login_limiter,
    )
    return limits


def exempt_loopback(limits: ConnectionLimits) -> ConnectionLimits:
    """A copy of ``limits`` with loopback peers exempt (see :class:`LoopbackExemptLimiter`)."""
    return dataclasses.replace(
        limits,
        rate=LoopbackExemptLimiter(limits.rate),  # type: ignore[arg-type]
        concurrent=LoopbackExemptLimiter(limits.concurrent),  # type: ignore[arg-type]
    )


def check_settings(ctx: PluginContext) -> None:
    """Read smtp.yaml at start-up so a bad value stops the server with a clear
    message before any listener starts."""
    ctx.core.smtp_limits = connection_limits(ctx)
    settings = ctx.plugin_settings("smtp")
    for key in ("IdleTimeout", "DataTimeout"):
        _seconds(settings, key, 1.0)
    _seconds(settings, "AuthFailDelay", 1.0, zero_ok=True)
    known = {"ConnectionsPerMinute", "ConcurrentConnections", "IdleTimeout", "DataTimeout", "AuthFailDelay"}
    unknown = set(settings) - known
    if unknown:
        raise PluginConfigError(f"smtp.yaml: unknown setting {sorted(unknown)[0]!r}")


def session_config(ctx: PluginContext, listener: Any, kind: ListenerKind, tls: ssl.SSLContext | None) -> SessionConfig:
    static = ctx.config.static
    hostname = getattr(listener, "Hostname", "") or static.Hostname
    settings = ctx.plugin_settings("smtp")
    cfg = SessionConfig(
        hostname=hostname,
        max_message_size=listener.smtp_max_message_size,
        pedantic=bool(static.Pedantic),
        tmp_dir=str(Path(ctx.config.data_dir) / "tmp"),
    )
    # Optional timeouts in smtp.yaml; mox's values otherwise.
    cfg.idle_timeout = _seconds(settings, "IdleTimeout", cfg.idle_timeout)
    cfg.data_timeout = _seconds(settings, "DataTimeout", cfg.data_timeout)
    # Extra wait per failed AUTH beyond the third on a connection (mox: 1s).
    cfg.auth_fail_delay = _seconds(settings, "AuthFailDelay", cfg.auth_fail_delay, zero_ok=True)
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
    limits = ctx.core.smtp_limits or connection_limits(ctx)
    if ctx.has_queue and ctx.queue.loopback.active:
        limits = ctx.core.smtp_limits = exempt_loopback(limits)
    await trio.Path(ctx.config.data_dir, "tmp").mkdir(parents=True, exist_ok=True)
    decoy_key = await ctx.store.write(lambda conn: store_accounts.server_secret(conn, "scram-decoy-salt"))
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
            cfg.decoy_key = decoy_key
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
