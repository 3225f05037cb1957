"""One log line and one measurement per webhook attempt.

The URL is logged without credentials (``https://user:pass@host`` loses its
user part): log files are read by more people than the webhook's owner.
"""

from __future__ import annotations

import logging
import urllib.parse

from core import metrics
from core.mlog import kv
from plugins.webhooks.queue_ops import AttemptOutcome
from plugins.webhooks.records import Hook

log = logging.getLogger("moxtrio.webhooks")


def safe_url(url: str) -> str:
    """The URL with any user information removed."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return "(invalid url)"
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def report_webhook(hook: Hook, outcome: AttemptOutcome, state: str = "") -> None:
    """``state``: what the queue did with the hook after the attempt (retired, retry...)."""
    seconds = outcome.duration_ns / 1e9
    code = metrics.http_result(outcome.code) if outcome.code else "error"
    metrics.record(metrics.WebhookRequest(code, seconds))
    log.info(
        "webhook delivered" if outcome.success else "webhook attempt failed",
        extra=kv(
            hookid=hook.id,
            account=hook.account,
            event=hook.event_name,
            qid=hook.queue_msg_id or "",
            attempt=hook.attempts,
            url=safe_url(hook.url),
            status=outcome.code or "",
            duration=f"{seconds:.3f}s",
            state=state,
            **({"err": outcome.error} if outcome.error else {}),
        ),
    )
