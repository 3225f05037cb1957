"""Where localserve delivers (its own SMTP listener), and with which time limits.

The target is the server's own SMTP listener: the first IP of the listener
named ``local`` when it has SMTP enabled, at its SMTP port (1025 when the
config leaves it 0, as mox does), else ``localhost:1025``.

Time limits default to mox's (dial 30 s, session set-up 60 s, each read
30 s, the transaction 60 s + 1 s per MiB). They can be changed in
``<config dir>/plugins/localserve.yaml`` (keys ``dial_timeout``,
``session_timeout``, ``read_timeout``, ``data_timeout``, seconds). The same
file holds ``fast_retries`` (``moxtrio localserve -fast-retries`` sets it)
and ``followup_delay`` (seconds before a simulated complaint or late
bounce). Settings the embedder gives the server
(``ctx.settings_overrides["localserve"]``: the CLI flag, tests) win over
the file.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Any

from moxtrio import PluginConfigError, PluginContext

PLUGIN = "localserve"
DEFAULT_HOST = "localhost"
DEFAULT_PORT = 1025
EHLO_NAME = "localhost"


@dataclass(frozen=True)
class Timeouts:
    """Seconds; ``data_timeout`` None = 60 s + 1 s per MiB of message (the client's rule)."""

    dial_timeout: float = 30.0
    session_timeout: float = 60.0
    read_timeout: float = 30.0
    data_timeout: float | None = None


@dataclass(frozen=True)
class LocalserveSettings:
    """The plugin's parsed settings, kept per server in its context."""

    timeouts: Timeouts
    fast_retries: bool = False
    followup_delay: float | None = None


@dataclass(frozen=True)
class Target:
    host: str
    ips: list[str] | None
    port: int


def delivery_target(ctx: PluginContext) -> Target:
    """Our own SMTP listener, as mox's localserve queue picks it."""
    listener = ctx.config.static.Listeners.get("local")
    if listener is not None and listener.SMTP.Enabled and listener.IPs:
        port = int(listener.SMTP.Port) or DEFAULT_PORT
        return Target(host=DEFAULT_HOST, ips=[listener.IPs[0]], port=port)
    return Target(host=DEFAULT_HOST, ips=None, port=DEFAULT_PORT)


def _seconds(name: str, value: Any, *, optional: bool) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PluginConfigError(f"{PLUGIN}: {name} must be a number of seconds, got {value!r}")
    v = float(value)
    if not math.isfinite(v) or v <= 0:
        raise PluginConfigError(f"{PLUGIN}: {name} must be a positive number of seconds")
    return v


def parse_timeouts(data: dict[str, Any], base: Timeouts | None = None) -> Timeouts:
    """Timeouts from a settings mapping; unknown keys and bad values are config errors."""
    base = base or Timeouts()
    names = {f.name for f in fields(Timeouts)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise PluginConfigError(f"{PLUGIN}: unknown setting(s): {', '.join(unknown)}")
    changes: dict[str, Any] = {}
    for name, value in data.items():
        changes[name] = _seconds(name, value, optional=name == "data_timeout")
    return replace(base, **changes)


_OTHER_KEYS = ("fast_retries", "followup_delay")


def parse_settings(data: dict[str, Any]) -> LocalserveSettings:
    """The whole settings mapping: time limits plus the fast-retry and follow-up keys."""
    fast = data.get("fast_retries", False)
    if not isinstance(fast, bool):
        raise PluginConfigError(f"{PLUGIN}: fast_retries must be true or false, got {fast!r}")
    delay = data.get("followup_delay")
    if delay is not None:
        delay = _seconds("followup_delay", delay, optional=False)
    timeouts = parse_timeouts({k: v for k, v in data.items() if k not in _OTHER_KEYS})
    return LocalserveSettings(timeouts, fast, delay)


def configure(ctx: PluginContext) -> LocalserveSettings:
    """Read and validate the settings file once, at start-up (never on the trio hot path).

    The delivery hook's time limit (declared in the hook specification,
    changed in ``plugins/hooks.yaml``) must fit a whole delivery with these
    timeouts: a delivery cut off by the dispatcher would be reported as a
    plugin failure instead of the ``i/o timeout`` a client of mox sees.
    """
    parsed = parse_settings(ctx.plugin_settings(PLUGIN))
    ctx.provide(LocalserveSettings, parsed)
    timeouts = parsed.timeouts
    needed = delivery_time_limit(timeouts, ctx.config.static.Listeners)
    limit = ctx.hooks.time_limit_for("moxtrio_deliver")
    if needed > limit:
        raise PluginConfigError(
            f"{PLUGIN}: a delivery may take {needed:g}s with these timeouts, longer than "
            f"the moxtrio_deliver time limit of {limit:g}s; raise time_limits: "
            "moxtrio_deliver in plugins/hooks.yaml"
        )
    return parsed


#: mox's default maximum message size, for the transaction time bound.
_DEFAULT_MAX_SIZE = 100 * 1024 * 1024
_MARGIN = 15.0  # QUIT, a plaintext retry's dial, scheduling


def delivery_time_limit(timeouts: Timeouts, listeners: dict[str, Any]) -> float:
    """Upper bound on one delivery: dial + session set-up + transaction + margin.

    Split transactions run concurrently, so one transaction's bound is the
    batch's.
    """
    data = timeouts.data_timeout
    if data is None:
        listener = listeners.get("local")
        size = listener.smtp_max_message_size if listener is not None else _DEFAULT_MAX_SIZE
        data = 60.0 + size / (1024 * 1024)
    return 2 * timeouts.dial_timeout + timeouts.session_timeout + data + _MARGIN


def load_timeouts(ctx: PluginContext) -> Timeouts:
    """Settings (parsed at configure time), then the embedder's overrides given since."""
    parsed = ctx.service(LocalserveSettings)
    timeouts = parsed.timeouts if parsed is not None else Timeouts()
    override = ctx.settings_overrides.get(PLUGIN) or {}
    names = {f.name for f in fields(Timeouts)}
    return parse_timeouts({k: v for k, v in override.items() if k in names}, timeouts)
