"""The ``/metrics`` page in Prometheus's text format."""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST
from quart import Blueprint, Response

from moxtrio import PluginContext
from plugins.metrics.collect import METRICS


def blueprint(ctx: PluginContext, path: str) -> Blueprint:
    """Serve ``<path>metrics`` (mox: ``/metrics`` on the metrics port) and an index."""
    prefix = path.rstrip("/")
    bp = Blueprint("metrics", __name__, url_prefix=prefix or None)

    async def metrics() -> Response:
        # Gauges are read from the store now, in a worker thread like every
        # read, so a scrape always shows current queue and list sizes.
        await ctx.store.read(METRICS.read_gauges)
        return Response(METRICS.render(), status=200, content_type=CONTENT_TYPE_LATEST)

    async def index() -> Response:
        return Response(
            '<html><body><a href="metrics">metrics</a></body></html>\n',
            status=200, content_type="text/html; charset=utf-8",
        )

    bp.add_url_rule("/metrics", view_func=metrics, methods=["GET"], endpoint="metrics")
    bp.add_url_rule("/", view_func=index, methods=["GET"], endpoint="index")
    return bp
