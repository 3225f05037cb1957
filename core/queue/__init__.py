"""The outgoing queue: entries, scheduler, delivery, backoff, DSNs, retired history.

Entry points: :class:`core.queue.service.QueueService` (wired by the runtime
as ``ctx.queue``), :class:`core.queue.add.AddRequest` for
submitters, :class:`core.queue.admin.QueueFilter` for admin operations and
plugins, :func:`core.queue.events.raise_outgoing_event` for DSN matching.
"""
from core.queue import gauges as _gauges  # noqa: E402,F401 - offers queue levels to metrics
