"""Prometheus metrics at ``/metrics`` on listeners with ``MetricsHTTP`` enabled.

mox serves its metrics on the ``MetricsHTTP`` listener (port 1081 in
localserve); so do we, with mox's metric names where the same thing is
counted. The numbers come from :mod:`core.metrics`: the core and other
plugins record measurements there and offer gauge sources; this plugin
only subscribes and renders. See ``docs/metrics.md`` for the list.
"""

from __future__ import annotations

from core.metrics import add_sink
from moxtrio import HTTPService, PluginContext, hookimpl
from plugins.metrics.collect import METRICS


def _blueprint(ctx: PluginContext, path: str) -> object:
    # Imported on the first scrape: Quart is not loaded until a page needs it.
    from plugins.metrics.routes import blueprint

    return blueprint(ctx, path)


@hookimpl
def moxtrio_configure(ctx: PluginContext) -> None:
    add_sink(METRICS.observe)


@hookimpl
def moxtrio_http_services(ctx: PluginContext) -> list[HTTPService]:
    return [
        HTTPService(
            name="metrics",
            config_keys=("MetricsHTTP",),
            default_path="/",
            blueprint=_blueprint,
        )
    ]
