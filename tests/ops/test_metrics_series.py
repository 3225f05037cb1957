"""The metrics plugin's own counters and histograms: exposed exactly as prometheus_client's
``Counter`` and ``Histogram`` expose the same observations, and prometheus_client itself
imported only when the registry is first needed (the first scrape)."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from plugins.metrics.collect import CounterSeries, HistogramSeries, _SeriesCollector
from tests.support.procs import child_env

BUCKETS = (0.01, 0.1, 1, 10)
OBSERVATIONS = [(0.004, ("Send",)), (0.2, ("Send",)), (7.0, ("MessageGet",)), (100.0, ("Send",)), (0.01, ("Send",))]


def _without_created_values(text: str) -> str:
    return re.sub(r"(_created(\{[^}]*\})?) \S+", r"\1 T", text)


def test_series_expose_what_prometheus_client_metrics_expose() -> None:
    reference = CollectorRegistry(auto_describe=True)
    ref_hist = Histogram("h_seconds", "a histogram", ["method"], buckets=BUCKETS, registry=reference)
    ref_plain = Histogram("p_seconds", "no labels", buckets=BUCKETS, registry=reference)
    ref_counter = Counter("c", "a counter", ["method", "result"], registry=reference)
    Counter("u", "never counted", registry=reference)
    hist = HistogramSeries("h_seconds", "a histogram", ["method"], buckets=BUCKETS)
    plain = HistogramSeries("p_seconds", "no labels", buckets=BUCKETS)
    counter = CounterSeries("c", "a counter", ["method", "result"])
    unlabelled = CounterSeries("u", "never counted")
    for amount, labels in OBSERVATIONS:
        ref_hist.labels(*labels).observe(amount)
        hist.observe(amount, *labels)
        ref_plain.observe(amount)
        plain.observe(amount)
        ref_counter.labels(labels[0], "ok").inc()
        counter.inc(labels[0], "ok")
    ours = CollectorRegistry(auto_describe=True)
    ours.register(_SeriesCollector([hist, plain, counter, unlabelled]))
    want = _without_created_values(generate_latest(reference).decode())
    got = _without_created_values(generate_latest(ours).decode())
    assert 'h_seconds_bucket{le="+Inf",method="Send"} 4.0' in got
    assert "u_total 0.0" in got
    assert got == want


def test_prometheus_client_is_imported_at_the_first_render_only() -> None:
    code = textwrap.dedent("""
        import sys
        from core import metrics as m
        from plugins.metrics.collect import Metrics
        x = Metrics()
        x.observe(m.WebapiCall("Send", "ok", 0.2))
        x.observe(m.SMTPSubmission("ok"))
        before = "prometheus_client" in sys.modules
        text = x.render().decode()
        print(before, "prometheus_client" in sys.modules, 'mox_webapi_results_total{method="Send",result="ok"} 1.0' in text,
              "process_resident_memory_bytes" in text)
    """)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=child_env(), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "True", "True"]
