"""Messages that arrive some time after a simulated delivery: late bounces and complaints.

Delivery hands each successful ``latebounce`` or ``complaint`` recipient to
:class:`FollowUps`; its background task waits :data:`DEFAULT_DELAY` seconds
(setting ``followup_delay`` overrides it), composes a DSN or an
abuse report about the message and delivers it over SMTP to our own
listener, addressed to the original envelope sender (the fromid address
when the message had one). From there the incoming path treats it like a
report from the internet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from core.delivery.client import deliver
from core.message.arf import compose_feedback_report
from core.message.dsn import DSNRecipient, compose_dsn
from moxtrio import PluginContext
from plugins.localserve.settings import EHLO_NAME, delivery_target, load_timeouts

log = logging.getLogger("moxtrio.localserve.followups")

DEFAULT_DELAY = 1.0
QUEUE_MAX = 1000
BOUNCE_TEXT = "550 5.1.1 mailbox does not exist (simulated late bounce)"


@dataclass(frozen=True)
class FollowUp:
    kind: str  # "latebounce" | "complaint"
    mail_from: str
    recipient: str
    original_headers: bytes


def compose(item: FollowUp) -> tuple[str, bytes]:
    """(MAIL FROM, message) of the follow-up."""
    domain = item.recipient.rpartition("@")[2] or "localhost"
    if item.kind == "complaint":
        reporter = f"fbl@{domain}"
        data = compose_feedback_report(
            reporter=reporter,
            to=item.mail_from,
            original=item.original_headers,
            original_mail_from=item.mail_from,
            original_rcpt_to=item.recipient,
            reporting_mta=domain,
            user_agent="moxtrio-localserve/1.0",
        )
        # The null sender, as for the bounce below: the delivery listener checks a
        # sender's domain in DNS, and the simulated reporter's domain need not exist.
        return "", data
    now = datetime.now(UTC)
    data = compose_dsn(
        hostname=domain,
        to_addr=item.mail_from,
        kind="failed",
        recipients=[
            DSNRecipient(
                address=item.recipient,
                action="failed",
                status="5.1.1",
                remote_mta=domain,
                diagnostic_code=BOUNCE_TEXT,
                last_attempt=now,
            )
        ],
        arrival=now,
        original_headers=item.original_headers,
        error=BOUNCE_TEXT,
        smtp_lines=[BOUNCE_TEXT],
    )
    return "", data


class FollowUps:
    """The follow-up sender of one localserve server (``ctx.service(FollowUps)``)."""

    def __init__(self, ctx: PluginContext, delay: float = DEFAULT_DELAY) -> None:
        self.ctx = ctx
        self.delay = delay
        self._send, self._recv = trio.open_memory_channel[FollowUp](QUEUE_MAX)

    def submit(self, item: FollowUp) -> None:
        try:
            self._send.send_nowait(item)
        except trio.WouldBlock:
            log.error("too many pending simulated follow-ups, dropping %s for %s", item.kind, item.recipient)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            task_status.started()
            async for item in self._recv:
                nursery.start_soon(self._one, item)

    async def _one(self, item: FollowUp) -> None:
        await trio.sleep(self.delay)
        try:
            mail_from, data = await trio.to_thread.run_sync(compose, item)
            target = delivery_target(self.ctx)
            t = load_timeouts(self.ctx)
            result = await deliver(
                host=target.host, ips=target.ips, port=target.port, ehlo_name=EHLO_NAME,
                mail_from=mail_from, recipients=[item.mail_from], data=data,
                has8bit=False, smtputf8=False, require_tls=False, tls_mode="opportunistic",
                tls_verify=False, dial_timeout=t.dial_timeout, session_timeout=t.session_timeout,
                read_timeout=t.read_timeout, data_timeout=t.data_timeout,
            )
            ok = all(r.ok for r in result.recipients) and not result.error
            log.info("simulated %s about %s sent to %s: %s", item.kind, item.recipient,
                     item.mail_from, "ok" if ok else result.error or result.recipients[0].error)
        except Exception:  # noqa: BLE001 - a simulation must not bring the server down
            log.exception("sending simulated %s for %s", item.kind, item.recipient)

