"""The plugin contract: every hook moxtrio calls, when, and what it may return.

A plugin author reads this one file and knows the whole contract (the way
pytest's ``hookspec.py`` works). Hooks are grouped by the moment they run.
Plugins import every name they need from the public package ``moxtrio``
(``from moxtrio import hookimpl, PluginContext, Rejection``), never from here.

Three calling conventions exist, and each spec below names its own:

* **async-dispatched** hooks are called from trio tasks through
  :class:`core.dispatch.HookDispatcher`. Implementations may be plain functions
  or ``async def``; each call has a per-plugin time limit.
* **in-transaction** hooks are called synchronously in the store's writer
  thread, inside the SQLite transaction that records the event, with that
  transaction's ``conn`` and the server's ``ctx`` (a plugin finds its own
  per-server objects there with ``ctx.service(...)``, never in module
  globals). They must be plain functions, must not block on the
  network, and should only read/write rows. Their writes commit or roll back
  together with the core's rows (the durable outbox pattern): an event is
  never lost and never recorded twice.
* **start-up** hooks are called once, synchronously, while the server builds
  itself.

Each hook declares its kind with ``@_kind`` (a hook without one stops the
server at start-up); apart from start-up hooks (``setup``), a hook is one of
two kinds:

* a **verdict** hook decides something about mail (may this be queued, who
  delivers it). It *fails closed*: an exception in a plugin aborts the
  operation with a temporary error (SMTP ``451 4.3.0``, webapi ``server``), so
  nothing is half-done.
* an **observer** hook is told that something happened. It *fails open*: an
  exception is logged with the plugin's name and the mail flow goes on.
  (In-transaction observers are the exception to "goes on": their error
  is logged and their savepoint is rolled back, the core's rows still commit.)

"First result wins" hooks are marked ``firstresult=True``: the dispatcher
stops at the first implementation returning something other than ``None``.
The dispatcher reads both marks from the specification, never from the call
site. ``@_kind`` also declares how long one implementation of an
async-dispatched hook may take (``DEFAULT_TIME_LIMIT`` unless stated; the
delivery hook gets ``DELIVERY_TIME_LIMIT``); ``<config dir>/plugins/hooks.yaml``
overrides them (:mod:`core.hooklimits`). pluggy wrappers
(``wrapper=True``/``hookwrapper=True``) are refused at registration: the
dispatcher calls implementations itself and has no place for them.
Implementations run in the order plugins are listed in mox.conf's
``Plugins`` (first-party plugins alphabetically when it is absent), with
pluggy's ``tryfirst``/``trylast`` markers taking precedence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

import pluggy

if TYPE_CHECKING:  # pragma: no cover - imports for annotations only

    from core.events import (
        CommittedEvent,
        DeliveryBatch,
        DeliveryOutcome,
        IncomingAuthenticated,
        IncomingDelivered,
        OutgoingEvent,
        Submission,
    )
    from core.plugin_api import CliCommand, CtlCommand, HTTPService, PluginContext, Rejection
    from core.store.migrations import Migration
    from core.store.sql import Connection

PROJECT = "moxtrio"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

HookKind = Literal["verdict", "observer", "setup"]
HOOK_KINDS: dict[str, HookKind] = {}

#: Seconds one plugin's implementation of an async-dispatched hook may take.
DEFAULT_TIME_LIMIT = 30.0
#: A whole delivery: dialing twice (30 s each), session set-up (60 s), the
#: transaction of a message of mox's default maximum size (60 s + 1 s per MiB
#: of 100 MiB), and 15 s for QUIT and scheduling. The core's SMTP client uses
#: the same limits, so a delivering plugin is cut off only after the limits a
#: client of mox would see.
DELIVERY_TIME_LIMIT = 2 * 30 + 60 + (60 + 100) + 15.0


def _kind(kind: HookKind, time_limit: float | None = None) -> Any:
    """Record a hook's failure policy and time limit (None: the standard one) on its spec."""

    def mark(fn: Any) -> Any:
        HOOK_KINDS[fn.__name__] = kind
        fn.moxtrio_kind = kind
        fn.moxtrio_time_limit = time_limit
        return fn

    return mark


# --------------------------------------------------------------------------
# start: run once while the server builds itself (start-up hooks)
# --------------------------------------------------------------------------


@_kind("setup")
@hookspec
def moxtrio_migrations() -> list[Migration]:
    """Declare the tables this plugin owns.

    Called once before the store opens. Return a list of
    :class:`core.store.migrations.Migration` with ``owner`` set to the plugin's
    name and increasing ``version`` numbers; the store applies the ones not yet
    applied, each in its own transaction, and records the version per owner.
    Never edit a released migration: add a new version.
    """


@_kind("setup")
@hookspec
def moxtrio_configure(ctx: PluginContext) -> None:
    """Validate plugin settings and keep a handle on the running server.

    Called once after the config is loaded and the store is open, before any
    listener accepts connections. ``ctx`` gives access to the config, store,
    hook dispatcher, and the core's queue API. Raise
    :class:`core.plugin_api.PluginConfigError` for a setting that is wrong; the
    server refuses to start and prints the message.
    """


@_kind("setup")
@hookspec
def moxtrio_http_services(ctx: PluginContext) -> list[HTTPService]:
    """Add HTTP services (routes) to the web listeners.

    Return :class:`core.plugin_api.HTTPService` objects. Each names the
    listener config key that enables it (e.g. ``WebAPIHTTP``), its default
    path, and a factory that builds a Quart blueprint for the path the
    config chooses. The core serves every enabled service on its listener's
    port, several services sharing a port dispatched by path. A listener's
    blueprints are built into one Quart app on the first request that needs
    it (the factory runs then, not at start), and served without ASGI
    lifespan events: ``before_serving`` functions do not run. A service's
    ``asgi_route`` answers its busiest requests without Quart.
    """


@_kind("setup")
@hookspec
def moxtrio_ctl_commands(ctx: PluginContext) -> list[CtlCommand]:
    """Add commands to the control socket (and so to the ``moxtrio`` CLI).

    Return :class:`core.plugin_api.CtlCommand` objects. A command is a word
    path such as ``("queue", "holdrules", "list")``; ``moxtrio -config PATH
    queue holdrules list -account x`` sends its argv to the running server,
    which runs the handler with the remaining arguments. The longest matching
    path wins.
    """


@_kind("setup")
@hookspec
def moxtrio_cli_commands() -> list[CliCommand]:
    """Add commands that the ``moxtrio`` process runs itself (not the server).

    Called without a server and before any config is read: when the first
    word of a command line names an installed plugin (its entry-point
    name), that plugin alone is loaded and asked; ``moxtrio help`` asks
    every installed plugin. Return a :class:`core.plugin_api.CliCommand`
    whose words are the plugin's name alone (others are ignored with a log
    line), so ``moxtrio NAME -flags`` is always plugin NAME's.
    """


@_kind("setup")
@hookspec
def moxtrio_background_tasks(ctx: PluginContext) -> list[Any]:
    """Start long-running trio tasks in the server's nursery.

    Return a list of ``async def task(task_status=trio.TASK_STATUS_IGNORED)``
    callables. They are started with ``nursery.start`` after the store is
    open and before listeners accept connections, and are cancelled at
    shutdown. A task that raises brings the server down (crash loud, not
    silently stop delivering webhooks).
    """


# --------------------------------------------------------------------------
# SMTP moments (async-dispatched, verdicts: Haraka-style answers)
# --------------------------------------------------------------------------


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_smtp_mail_from(
    ctx: PluginContext, listener_kind: str, address: str
) -> Rejection | None:
    """A client sent ``MAIL FROM``; return a Rejection to refuse it.

    ``listener_kind`` is ``smtp``, ``submission`` or ``submissions``. Runs after
    the core's own checks passed. First rejection wins.
    """


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_smtp_rcpt_to(ctx: PluginContext, listener_kind: str, address: str) -> Rejection | None:
    """A client sent ``RCPT TO``; return a Rejection to refuse that recipient."""


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_smtp_fallback_recipient(ctx: PluginContext, listener_kind: str, address: str) -> str | None:
    """``RCPT TO`` names an address no account has: where should it go instead?

    Asked only for such addresses. Return the address whose destination
    receives the mail (``postmaster`` alone means the postmaster account), or
    None to refuse the recipient as unknown. On submission any answer
    accepts the recipient; the queue then delivers it like any other mail.
    A development server accepting every address uses this.
    """


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_smtp_data_recipient(
    ctx: PluginContext, listener_kind: str, address: str
) -> Rejection | None:
    """After DATA, per recipient, before the message is stored or queued.

    On the delivery listener a rejection fails that recipient only; on
    submission any rejection refuses the whole submission (as mox's
    simulated failures do). Return a Rejection with a ``stall`` to make the core wait
    before it replies, like a hung server would.
    """


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_incoming_authenticated(
    ctx: PluginContext, message: IncomingAuthenticated
) -> Rejection | None:
    """After DATA on the delivery listener, once SPF, DKIM and DMARC are evaluated.

    ``message.auth`` holds the results (``core.mailauth.analyze.Authentication``:
    ``spf``, ``dkim``, ``dmarc``, ``mail_from_validated``, ``msg_from_validated``,
    ``dmarc_reject`` ...). Return a Rejection to refuse the message for all
    recipients, or append ``"Name: value"`` lines to ``message.add_headers`` to
    mark it (they are prepended to the stored message). With no plugin
    answering, mox's default applies: a DMARC failure whose policy asks for
    rejection gets ``550 5.7.26 rejecting per dmarc policy``.
    """


# --------------------------------------------------------------------------
# submission: a message is about to be queued (async-dispatched)
# --------------------------------------------------------------------------


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_submission(ctx: PluginContext, submission: Submission) -> Rejection | None:
    """Inspect or annotate a submitted message before it is queued.

    Called for SMTP submission and webapi Send alike. Plugins may set
    ``submission.extra`` entries (the ``extra`` plugin reads
    ``X-Mox-Extra-*`` headers). Return a Rejection to refuse the submission;
    the first rejection wins and nothing is queued.
    """


# --------------------------------------------------------------------------
# queue: in-transaction hooks
# --------------------------------------------------------------------------


@_kind("verdict")
@hookspec
def moxtrio_queue_adding(conn: Connection, ctx: PluginContext, entries: list[Any]) -> None:
    """New queue entries are about to be inserted (in-transaction).

    ``entries`` are :class:`core.store.models.QueueEntry` objects of one
    message, not yet inserted. A plugin may set ``entry.hold = True`` (hold
    rules). Raising aborts the whole add: the submitter gets a temporary
    error and nothing is stored.
    """


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_delivery_precheck(
    conn: Connection, ctx: PluginContext, entry: Any
) -> DeliveryOutcome | None:
    """A recipient's delivery attempt is due (in-transaction, per recipient).

    Called for every entry of a batch before any connection is made. Return
    a :class:`core.events.DeliveryOutcome` to settle that recipient without
    an SMTP attempt (suppression fails it permanently with event
    ``suppressed``); ``None`` lets delivery go on.
    """


@_kind("verdict")
@hookspec(firstresult=True)
def moxtrio_suppress_decision(
    conn: Connection, ctx: PluginContext, entry: Any, outcome: DeliveryOutcome
) -> bool | None:
    """A recipient failed; decide whether it goes on the suppression list.

    In-transaction, called before the outgoing event is raised so the event
    carries ``Suppressing``. Return ``True`` if this failure added the
    recipient to the sender account's list. First result wins.
    """


@_kind("observer")
@hookspec
def moxtrio_outgoing_event(conn: Connection, ctx: PluginContext, event: OutgoingEvent) -> None:
    """An outgoing delivery event happened (in-transaction observer).

    Events: delivered, suppressed, delayed, failed, relayed, expanded,
    canceled, unrecognized — from queue attempts, admin operations, and
    incoming DSNs matched to sent messages (``event.dsn``) — and the
    extension event complaint (a spam complaint matched to a sent message). The webhooks
    plugin inserts its webhook row here so it commits with the event.
    """


@_kind("verdict")
@hookspec
async def moxtrio_after_commit(ctx: PluginContext, event: CommittedEvent) -> None:
    """An event committed: act on it over the network (async, after the commit).

    Delivered by the core's outbox at least once, in order: again after a
    crash before the core acknowledged it, and again (to every
    implementation) after any implementation raised or ran out of time.
    ``event.id`` is the same on every delivery: de-duplicate by it. Keep
    rows in the in-transaction hooks; use this one for side effects.
    """


# --------------------------------------------------------------------------
# delivery: who delivers (async-dispatched)
# --------------------------------------------------------------------------


@_kind("verdict", time_limit=DELIVERY_TIME_LIMIT)
@hookspec(firstresult=True)
async def moxtrio_deliver(ctx: PluginContext, batch: DeliveryBatch) -> Any:
    """Take over delivery of a batch of recipients of one message.

    Return a :class:`core.delivery.client.DeliveryResult` to say you delivered
    (or tried to); ``None`` lets the core's SMTP client deliver through MX.
    A development server's plugin delivers to the server's own SMTP listener.
    """


# --------------------------------------------------------------------------
# incoming (in-transaction observers)
# --------------------------------------------------------------------------


@_kind("observer")
@hookspec
def moxtrio_incoming_delivered(
    conn: Connection, ctx: PluginContext, delivered: IncomingDelivered
) -> None:
    """A message was stored in an account's mailbox from SMTP delivery.

    Not called for DSNs or fromid mail matched to an outgoing message (those
    raise ``moxtrio_outgoing_event`` with ``dsn=True`` instead), nor for
    rejected messages.
    """


@_kind("observer")
@hookspec
async def moxtrio_incoming_inspect(
    ctx: PluginContext, message_path: str, msg_prefix: bytes, message_data: bytes | None
) -> Any:
    """Look at a received message before it is stored (async-dispatched).

    Called once per message, outside the write transaction, so a plugin can
    read and parse the file (in a worker thread) without holding the
    writer. ``message_data`` is the whole file's content when the SMTP
    server already holds it (small messages; None otherwise), so most mail
    needs no read at all. Return an object describing what you found (e.g. a parsed
    spam-complaint report) or ``None``; the non-None results are handed to
    ``moxtrio_incoming_report`` inside the transaction.
    """


@_kind("observer")
@hookspec(firstresult=True)
def moxtrio_incoming_report(
    conn: Connection, ctx: PluginContext, delivered: IncomingDelivered, reports: list[Any]
) -> bool | None:
    """A stored message is a report about mail we sent (in-transaction, per recipient).

    Called only when ``moxtrio_incoming_inspect`` returned something.
    Return ``True`` when the message was consumed as a report (e.g. a spam
    complaint matched to an outgoing message): the core then raises neither
    DSN matching nor ``moxtrio_incoming_delivered`` for it. The message
    stays in the mailbox. A failing plugin is logged and the message is
    treated as ordinary mail.
    """

