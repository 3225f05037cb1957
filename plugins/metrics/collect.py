"""The Prometheus registry: mox's metric names fed from core measurements.

One registry per process (Prometheus metrics are process-wide, as in mox),
with the process collector for memory, CPU and open files.
"""

from __future__ import annotations

import logging

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

from core import metrics as m
from core.store.sql import Connection
from moxtrio import DatabaseError

log = logging.getLogger("moxtrio.metrics")

#: mox's buckets for these histograms.
DELIVERY_BUCKETS = (0.01, 0.05, 0.100, 0.5, 1, 5, 10, 20, 30, 60, 120)
HTTP_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 10, 20, 30)


class Metrics:
    """The counters and histograms, and the gauges read from the store."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        r = self.registry
        self.delivery = Histogram(
            "mox_queue_delivery_duration_seconds",
            "SMTP client delivery attempt to single host.",
            ["attempt", "transport", "tlsmode", "result"],
            buckets=DELIVERY_BUCKETS,
            registry=r,
        )
        self.smtp_submission = Counter(
            "mox_smtpserver_submission",
            "SMTP server incoming submission results, known values (those ending with error are "
            "server errors): ok, badmessage, badfrom, badheader, messagelimiterror, "
            "recipientlimiterror, queueerror, storesenterror.",
            ["result"],
            registry=r,
        )
        self.smtp_delivery = Counter(
            "mox_smtpserver_delivery",
            "SMTP incoming message delivery from external source, not submission. Result values: "
            "delivered, reject, unknownuser, accounterror, delivererror. Reason indicates why a "
            "message was rejected.",
            ["result", "reason"],
            registry=r,
        )
        self.webapi_results = Counter(
            "mox_webapi_results", "HTTP webapi results by method and result.", ["method", "result"],
            registry=r,
        )
        self.webapi_duration = Histogram(
            "mox_webapi_duration_seconds", "HTTP webapi call duration.", ["method"],
            buckets=HTTP_BUCKETS, registry=r,
        )
        self.webapi_submission = Counter(
            "mox_webapi_submission",
            "Webapi message submission results, known values (those ending with error are server "
            "errors): ok, badfrom, messagelimiterror, recipientlimiterror, queueerror, storesenterror.",
            ["result"],
            registry=r,
        )
        self.webhook_duration = Histogram(
            "mox_webhook_request_duration_seconds", "HTTP webhook call duration.",
            buckets=HTTP_BUCKETS, registry=r,
        )
        self.webhook_results = Counter(
            "mox_webhook_results", "HTTP webhook call results.", ["code"], registry=r
        )
        self._gauges: dict[str, Gauge] = {}

    def observe(self, x: m.Measurement) -> None:
        """The sink registered with :mod:`core.metrics`."""
        if isinstance(x, m.DeliveryAttempt):
            self.delivery.labels(str(x.attempt), x.transport, x.tlsmode, x.result).observe(x.seconds)
        elif isinstance(x, m.SMTPSubmission):
            self.smtp_submission.labels(x.result).inc()
        elif isinstance(x, m.SMTPDelivery):
            self.smtp_delivery.labels(x.result, x.reason).inc()
        elif isinstance(x, m.WebapiCall):
            self.webapi_results.labels(x.method, x.result).inc()
            self.webapi_duration.labels(x.method).observe(x.seconds)
        elif isinstance(x, m.WebapiSubmission):
            self.webapi_submission.labels(x.result).inc()
        elif isinstance(x, m.WebhookRequest):
            self.webhook_duration.observe(x.seconds)
            self.webhook_results.labels(x.code).inc()

    def read_gauges(self, conn: Connection) -> None:
        """Refresh every offered gauge from the store (in a worker thread)."""
        for source in m.gauges():
            gauge = self._gauges.get(source.name)
            if gauge is None:
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
        return generate_latest(self.registry)


METRICS = Metrics()
