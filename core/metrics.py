"""Measurements the core and plugins record, for whoever turns them into metrics.

The core counts things (a delivery attempt, a submission, a webapi call)
by recording a small typed measurement here; it does not know Prometheus.
A metrics plugin subscribes with :func:`add_sink` and keeps its own
counters, so the core never imports the plugin and plugins never import
each other: the webhooks plugin records its requests here too.

Levels that are read rather than counted (queue size, webhook queue size,
suppressions per account) are offered as *gauge sources*: a function that
reads the store and returns ``{label tuple: value}``, registered by the
part that owns the table and polled by the metrics plugin at scrape time.

Recording is cheap and never raises: a failing sink is logged and skipped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from core.store.sql import Connection

log = logging.getLogger("moxtrio.metrics")


@dataclass(frozen=True)
class DeliveryAttempt:
    """One SMTP delivery attempt of a batch to one host (mox_queue_delivery_duration_seconds)."""

    attempt: int
    transport: str
    tlsmode: str
    #: ok, timeout, canceled, temperror, permerror or error, as mox labels it.
    result: str
    seconds: float


@dataclass(frozen=True)
class SMTPSubmission:
    """A message submitted over SMTP (mox_smtpserver_submission_total)."""

    result: str


@dataclass(frozen=True)
class SMTPDelivery:
    """A message delivered to us over SMTP (mox_smtpserver_delivery_total)."""

    result: str
    reason: str = ""


@dataclass(frozen=True)
class WebapiCall:
    """One webapi request (mox_webapi_results_total, mox_webapi_duration_seconds)."""

    method: str
    #: ``ok``, ``badauth`` or the error code, as mox labels it.
    result: str
    seconds: float


@dataclass(frozen=True)
class WebapiSubmission:
    """A webapi Send (mox_webapi_submission_total)."""

    result: str


@dataclass(frozen=True)
class WebhookRequest:
    """One webhook HTTP call (mox_webhook_request_duration_seconds, mox_webhook_results_total)."""

    #: The HTTP status code, ``<major>xx`` for unusual ones, or ``error``.
    code: str
    seconds: float


Measurement = (
    DeliveryAttempt | SMTPSubmission | SMTPDelivery | WebapiCall | WebapiSubmission | WebhookRequest
)
Sink = Callable[[Measurement], None]
#: Reads the store (in a worker thread) and returns values by label tuple.
GaugeSource = Callable[[Connection], dict[tuple[str, ...], float]]


@dataclass(frozen=True)
class Gauge:
    """A level read at scrape time from the store."""

    name: str
    help: str
    labels: tuple[str, ...]
    read: GaugeSource


_sinks: list[Sink] = []
_gauges: dict[str, Gauge] = {}


def add_sink(sink: Sink) -> None:
    if sink not in _sinks:
        _sinks.append(sink)


def remove_sink(sink: Sink) -> None:
    if sink in _sinks:
        _sinks.remove(sink)


def record(m: Measurement) -> None:
    """Hand a measurement to every sink (none: nothing happens)."""
    for sink in list(_sinks):
        try:
            sink(m)
        except Exception:  # noqa: BLE001 - metrics never break mail
            log.exception("metrics sink failed")


def add_gauge(gauge: Gauge) -> None:
    """Offer a level to metrics (registered by the owner of its table)."""
    _gauges[gauge.name] = gauge


def gauges() -> list[Gauge]:
    return list(_gauges.values())


def http_result(status: int) -> str:
    """mox's webhook result label: known status codes as is, else ``<major>xx``."""
    if status in (200, 201, 202, 204, 301, 302, 304, 400, 401, 403, 404, 405, 409, 429, 500, 502, 503, 504):
        return str(status)
    return f"{status // 100}xx"
