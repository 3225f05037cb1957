"""The Prometheus registry: mox's metric names fed from core measurements.

One registry per process (Prometheus metrics are process-wide, as in mox),
with the process collector for memory, CPU and open files.

Counters and histograms are kept here in plain dicts, and prometheus_client
is imported on the first scrape, when the registry is built around them (a
collector that exposes them exactly as prometheus_client's own ``Counter``
and ``Histogram`` do, ``_created`` series included). A server nobody scrapes
never loads it (about 3 MiB and 20 ms of start-up), and recording a
measurement is a dict update instead of a locked metric child lookup.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from core import metrics as m
from core.store.sql import Connection
from moxtrio import DatabaseError

log = logging.getLogger("moxtrio.metrics")

#: mox's buckets for these histograms.
DELIVERY_BUCKETS = (0.01, 0.05, 0.100, 0.5, 1, 5, 10, 20, 30, 60, 120)
HTTP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 20, 30)

_lock = threading.Lock()


class CounterSeries:
    """A counter's value and creation time per label values."""

    kind = "counter"

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = ()) -> None:
        self.name, self.doc, self.labelnames = name, doc, tuple(labelnames)
        self.values: dict[tuple[str, ...], list[float]] = {}
        if not self.labelnames:
            self.values[()] = [0.0, time.time()]

    def inc(self, *labels: str) -> None:
        with _lock:
            v = self.values.get(labels)
            if v is None:
                self.values[labels] = [1.0, time.time()]
            else:
                v[0] += 1.0

    def samples(self, use_created: bool) -> Iterator[tuple[str, dict[str, str], float]]:
        for labels, (value, created) in list(self.values.items()):
            names = dict(zip(self.labelnames, labels, strict=True))
            yield self.name + "_total", names, value
            if use_created:
                yield self.name + "_created", names, created


class HistogramSeries:
    """A histogram's bucket counts, sum and creation time per label values."""

    kind = "histogram"

    def __init__(self, name: str, doc: str, labelnames: Sequence[str] = (),
                 buckets: Sequence[float] = ()) -> None:
        self.name, self.doc, self.labelnames = name, doc, tuple(labelnames)
        self.bounds = [float(b) for b in buckets] + [float("inf")]
        # Per label values: [count per bucket..., sum, created].
        self.values: dict[tuple[str, ...], list[float]] = {}
        if not self.labelnames:
            self.values[()] = self._new()

    def _new(self) -> list[float]:
        return [0.0] * len(self.bounds) + [0.0, time.time()]

    def observe(self, amount: float, *labels: str) -> None:
        with _lock:
            v = self.values.get(labels)
            if v is None:
                v = self.values[labels] = self._new()
            v[-2] += amount
            for i, bound in enumerate(self.bounds):
                if amount <= bound:
                    v[i] += 1.0
                    break

    def samples(self, use_created: bool) -> Iterator[tuple[str, dict[str, str], float]]:
        from prometheus_client.utils import floatToGoString

        n = len(self.bounds)
        for labels, v in list(self.values.items()):
            names = dict(zip(self.labelnames, labels, strict=True))
            acc = 0.0
            for i, bound in enumerate(self.bounds):
                acc += v[i]
                yield self.name + "_bucket", {**names, "le": floatToGoString(bound)}, acc
            yield self.name + "_count", names, acc
            yield self.name + "_sum", names, v[n]
            if use_created:
                yield self.name + "_created", names, v[n + 1]


class _SeriesCollector:
    """Exposes the series to a prometheus_client registry."""

    def __init__(self, series: list[CounterSeries | HistogramSeries]) -> None:
        self.series = series

    def collect(self) -> Iterator[Any]:
        from prometheus_client import metrics as prom_metrics
        from prometheus_client.metrics_core import Metric

        use_created = bool(getattr(prom_metrics, "_use_created", True))
        for s in self.series:
            metric = Metric(s.name, s.doc, s.kind)
            for name, labels, value in s.samples(use_created):
                metric.add_sample(name, labels, value)
            yield metric


class Metrics:
    """The counters and histograms, and the gauges read from the store."""

    def __init__(self) -> None:
        self.delivery = HistogramSeries(
            "mox_queue_delivery_duration_seconds",
            "SMTP client delivery attempt to single host.",
            ["attempt", "transport", "tlsmode", "result"],
            buckets=DELIVERY_BUCKETS,
        )
        self.smtp_submission = CounterSeries(
            "mox_smtpserver_submission",
            "SMTP server incoming submission results, known values (those ending with error are "
            "server errors): ok, badmessage, badfrom, badheader, messagelimiterror, "
            "recipientlimiterror, queueerror, storesenterror.",
            ["result"],
        )
        self.smtp_delivery = CounterSeries(
            "mox_smtpserver_delivery",
            "SMTP incoming message delivery from external source, not submission. Result values: "
            "delivered, reject, unknownuser, accounterror, delivererror. Reason indicates why a "
            "message was rejected.",
            ["result", "reason"],
        )
        self.webapi_results = CounterSeries(
            "mox_webapi_results", "HTTP webapi results by method and result.", ["method", "result"],
        )
        self.webapi_duration = HistogramSeries(
            "mox_webapi_duration_seconds", "HTTP webapi call duration.", ["method"], buckets=HTTP_BUCKETS,
        )
        self.webapi_submission = CounterSeries(
            "mox_webapi_submission",
            "Webapi message submission results, known values (those ending with error are server "
            "errors): ok, badfrom, messagelimiterror, recipientlimiterror, queueerror, storesenterror.",
            ["result"],
        )
        self.webhook_duration = HistogramSeries(
            "mox_webhook_request_duration_seconds", "HTTP webhook call duration.", buckets=HTTP_BUCKETS,
        )
        self.webhook_results = CounterSeries("mox_webhook_results", "HTTP webhook call results.", ["code"])
        self._series: list[CounterSeries | HistogramSeries] = [
            self.delivery, self.smtp_submission, self.smtp_delivery, self.webapi_results,
            self.webapi_duration, self.webapi_submission, self.webhook_duration, self.webhook_results,
        ]
        self._registry: Any = None
        self._gauges: dict[str, Any] = {}

    @property
    def registry(self) -> Any:
        """The prometheus_client registry, built (and the library imported) on first use."""
        with _lock:
            if self._registry is None:
                from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

                registry = CollectorRegistry(auto_describe=True)
                ProcessCollector(registry=registry)
                PlatformCollector(registry=registry)
                registry.register(_SeriesCollector(self._series))
                self._registry = registry
            return self._registry

    def observe(self, x: m.Measurement) -> None:
        """The sink registered with :mod:`core.metrics`."""
        if isinstance(x, m.WebapiCall):
            self.webapi_results.inc(x.method, x.result)
            self.webapi_duration.observe(x.seconds, x.method)
        elif isinstance(x, m.WebapiSubmission):
            self.webapi_submission.inc(x.result)
        elif isinstance(x, m.SMTPSubmission):
            self.smtp_submission.inc(x.result)
        elif isinstance(x, m.DeliveryAttempt):
            self.delivery.observe(x.seconds, str(x.attempt), x.transport, x.tlsmode, x.result)
        elif isinstance(x, m.SMTPDelivery):
            self.smtp_delivery.inc(x.result, x.reason)
        elif isinstance(x, m.WebhookRequest):
            self.webhook_duration.observe(x.seconds)
            self.webhook_results.inc(x.code)

    def read_gauges(self, conn: Connection) -> None:
        """Refresh every offered gauge from the store (in a worker thread)."""
        for source in m.gauges():
            gauge = self._gauges.get(source.name)
            if gauge is None:
                from prometheus_client import Gauge

                gauge = Gauge(source.name, source.help, list(source.labels), registry=self.registry)
                self._gauges[source.name] = gauge
            try:
                values = source.read(conn)
            except DatabaseError as exc:
                log.warning("metrics gauge %s: %s", source.name, exc)
                continue
            if source.labels:
                gauge.clear()
                for labels, value in values.items():
                    gauge.labels(*labels).set(value)
            else:
                gauge.set(values.get((), 0.0))

    def render(self) -> bytes:
        from prometheus_client import generate_latest

        return bytes(generate_latest(self.registry))


METRICS = Metrics()
