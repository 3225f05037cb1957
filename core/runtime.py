"""The server process: one trio nursery that owns every listener and worker.

``Server.run`` builds the server in a fixed order (config -> plugins ->
store -> plugin setup -> listeners -> queue) and then waits for a shutdown
request. Shutdown is graceful and in the reverse order: the queue starts no
more deliveries and lets those in flight finish (or settles them), HTTP
listeners stop accepting and let in-flight requests finish, SMTP sessions
get a short grace period, background workers are cancelled (anything they
had not committed stays safely queued), and the store drains its pending
writes before closing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio

from core import ctl, outbox
from core.accounts import sync_accounts
from core.builtin_commands import builtin_commands
from core.cluster.listen import attach as attach_listener
from core.cluster.setup import node_from_settings
from core.config.reloader import run_reloader
from core.dispatch import HookDispatcher, HookFailed
from core.dns import Resolver
from core.filemodes import fix_modes, restrict_umask
from core.hooklimits import load_time_limits
from core.http import plan_bindings, serve_binding
from core.plugin_api import CtlCommand, HTTPService, PluginConfigError, PluginContext
from core.plugins import create_manager, plugin_names
from core.queue.clock import Clock
from core.queue.service import QueueService
from core.smtp.listeners import check_settings as check_smtp_settings
from core.smtp.listeners import start_smtp_listeners
from core.startup_checks import database_settings, preflight
from core.store import Store
from core.tls import listener_ssl_context

log = logging.getLogger("moxtrio.server")

SHUTDOWN_GRACE = 3.0


@dataclass
class Listening:
    """What the server bound, for logs, tests and the startup banner."""

    http: list[str] = field(default_factory=list)
    smtp: list[str] = field(default_factory=list)
    ctl: str = ""


class Server:
    """A running moxtrio instance (``moxtrio serve``, or a plugin's command such as the development server)."""

    def __init__(
        self,
        config: Any,
        *,
        localserve: bool = False,  # kept: the mode switch, see below
        extra_plugins: Iterable[object] = (),
        resolver: Resolver | None = None,
        clock: Clock | None = None,
        settings: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.config = config
        # Given by the embedder: a DNS resolver and a fake clock (tests), and
        # plugin settings that win over the files (a plugin command's flags).
        self.resolver = resolver
        self.clock = clock
        self.settings = dict(settings or {})
        # Kept in the core: the mode switch handed to every plugin; the
        # localserve plugin acts only when it is set (see PluginContext).
        self.localserve = localserve
        self.extra_plugins = list(extra_plugins)
        self.listening = Listening()
        self.ctx: PluginContext | None = None
        self._shutdown = trio.Event()
        self._http_shutdown = trio.Event()

    def request_shutdown(self) -> None:
        """Ask the server to stop (signal handlers and the ``stop`` command)."""
        self._shutdown.set()

    async def run(self, *, task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED) -> None:
        pm = create_manager(self.config.plugins, self.extra_plugins)
        limits = await trio.to_thread.run_sync(load_time_limits, self.config.dir)
        hooks = HookDispatcher(pm, time_limits=limits)
        log.info("plugins loaded: %s", ", ".join(plugin_names(pm)) or "none")
        # Refuse to start (port taken, TLS file missing) before anything is
        # written to the data directory.
        await trio.to_thread.run_sync(preflight, self.config, hooks)
        migrations = hooks.setup("moxtrio_migrations") + outbox.migrations(hooks)
        data_dir = Path(self.config.data_dir)
        restrict_umask()
        await trio.Path(data_dir).mkdir(parents=True, exist_ok=True)
        await trio.to_thread.run_sync(fix_modes, [Path(self.config.dir), data_dir])
        store = await Store.open(data_dir, migrations, database=await database_settings(self.config))
        try:
            # The mode switch (kept, see __init__) reaches the plugins here.
            ctx = PluginContext(config=self.config, store=store, hooks=hooks, localserve=self.localserve,
                                settings_overrides=self.settings)
            if self.resolver is not None:
                ctx.resolver = self.resolver
            if self.clock is not None:
                ctx.clock = self.clock
            ctx.core.request_shutdown = self.request_shutdown
            self.ctx = ctx
            await self._prepare(ctx)
            await self._serve(ctx, task_status)
        finally:
            with trio.CancelScope(shield=True):
                await store.aclose()
        log.info("server stopped")

    async def _prepare(self, ctx: PluginContext) -> None:
        missing = await ctx.store.check_files()
        for row in missing:
            log.error("message file missing for stored row: %s", row)
        await ctx.load_settings()
        ctx.cluster = node_from_settings(ctx)
        check_smtp_settings(ctx)
        ctx.queue = QueueService(ctx, clock=ctx.clock)
        try:
            ctx.hooks.setup("moxtrio_configure", ctx=ctx)
        except HookFailed as exc:
            if isinstance(exc.cause, PluginConfigError):
                raise PluginConfigError(f"plugin {exc.plugin}: {exc.cause}") from exc
            raise
        await sync_accounts(ctx)

    async def _serve(self, ctx: PluginContext, task_status: trio.TaskStatus[Server]) -> None:
        services: list[HTTPService] = ctx.hooks.setup("moxtrio_http_services", ctx=ctx)
        queue = ctx.queue
        commands: list[CtlCommand] = (
            builtin_commands() + queue.ctl_commands() + ctx.hooks.setup("moxtrio_ctl_commands", ctx=ctx)
        )
        tasks = ctx.hooks.setup("moxtrio_background_tasks", ctx=ctx)
        listener = attach_listener(ctx.store, ctx.cluster.wakeups)
        async with trio.open_nursery() as nursery:
            ctl_path = ctl.socket_path(Path(self.config.data_dir))
            await nursery.start(ctl.serve_ctl, ctx, ctl_path, commands)
            self.listening.ctl = str(ctl_path)
            await nursery.start(run_reloader, self.config, ctx.refresh_settings)
            for task in tasks:
                await nursery.start(task)
            if listener is not None:
                await nursery.start(listener.run)
            # Listeners live in a nursery of their own so that shutdown can
            # let them finish in-flight work before the workers are cancelled.
            async with trio.open_nursery() as front:
                smtp_shutdown = trio.Event()
                ctx.core.smtp_shutdown = smtp_shutdown
                self.listening.smtp += await start_smtp_listeners(ctx, front, smtp_shutdown)
                for binding in plan_bindings(self.config, services):
                    ssl_context = None
                    if binding.tls:
                        ssl_context = await trio.to_thread.run_sync(
                            listener_ssl_context, self.config, binding.listener, ["h2", "http/1.1"]
                        )
                        if ssl_context is None:
                            log.warning("no TLS certificate for https listener %s, skipped", binding.address)
                            continue
                    binds = await front.start(_serve_http, ctx, binding, self._http_shutdown, ssl_context)
                    mounted = ", ".join(f"{s.name} {p}" for s, p in binding.mounts)
                    for b in binds:
                        log.info("listening for http: %s (%s)", b, mounted)
                    self.listening.http += binds
                # The queue starts after the listeners (a plugin may have it
                # deliver to them) and stops before them.
                await nursery.start(queue.run)
                if outbox.wanted(ctx):
                    await nursery.start(outbox.run_outbox, ctx)
                for line in self.listening.smtp:
                    log.info("listening for smtp: %s", line)
                log.info("control socket: %s", self.listening.ctl)
                task_status.started(self)
                await self._shutdown.wait()
                log.info("shutting down")
                await queue.stop()
                self._http_shutdown.set()
                smtp_shutdown.set()
                # In-flight HTTP requests and SMTP transactions get a moment to
                # finish; whatever is not done by then was never acknowledged.
                front.cancel_scope.deadline = trio.current_time() + SHUTDOWN_GRACE
            nursery.cancel_scope.cancel()


async def _serve_http(
    ctx: PluginContext,
    binding: Any,
    shutdown: trio.Event,
    ssl_context: Any,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    await serve_binding(ctx, binding, shutdown, ssl_context=ssl_context, task_status=task_status)
