"""One log line and one measurement per recipient per delivery attempt.

The line says what an operator asks first: which message (queue id), from
and to whom, which host answered, how long it took, the result code and the
error. Successes log at info, failures at info too (a failed delivery is
the remote's doing, not ours), as mox does.
"""

from __future__ import annotations

import logging

from core import metrics
from core.mlog import kv
from core.queue.results import RecipientOutcome
from core.queue.routing import TransportChoice
from core.store.models import QueueEntry

log = logging.getLogger("moxtrio.queue")


def _result(o: RecipientOutcome) -> str:
    """mox's ``result`` label: ok, temperror, permerror, timeout or error."""
    if o.ok:
        return "ok"
    if "timeout" in o.error.lower() and not o.code:
        return "timeout"
    if o.permanent:
        return "permerror"
    return "temperror" if o.code else "error"


def report_attempt(
    batch: list[QueueEntry], choice: TransportChoice, outs: list[RecipientOutcome], seconds: float
) -> None:
    """Log each recipient's outcome and record the attempt for metrics."""
    by_id = {e.id: e for e in batch}
    for o in outs:
        e = by_id.get(o.entry_id)
        if e is None:
            continue
        attrs = kv(
            qid=e.id,
            account=e.sender_account,
            **{"from": e.sender_address or "<>"},
            to=e.recipient,
            attempt=e.attempts,
            mxhost=o.remote_host or ",".join(o.dialed) or "",
            transport=choice.name,
            duration=f"{seconds:.3f}s",
            result=_result(o),
            code=o.code or "",
            secode=o.secode,
            **({"err": o.error} if o.error else {}),
        )
        log.info("delivered" if o.ok else "delivery attempt failed", extra=attrs)
    if outs:
        results = {_result(o) for o in outs}
        result = "ok" if results == {"ok"} else sorted(results - {"ok"})[0]
        attempt = max((e.attempts for e in batch), default=0)
        metrics.record(metrics.DeliveryAttempt(attempt, choice.name, "opportunistic", result, seconds))
