"""moxtrio's public plugin API: everything a plugin imports, in one place.

A plugin writes ``from moxtrio import hookimpl, PluginContext, Rejection``
and never imports ``core`` or ``plugins``: those are the server's internals
and move as the server evolves, while the names here stay (the way pytest's
``pytest`` package stands over ``_pytest``). The hooks themselves, with their
arguments and rules, are declared in ``core/hookspecs.py``; docs/plugins.md
explains them.
"""

from __future__ import annotations

from core.delivery.client import DeliveryResult, RecipientResult
from core.dispatch import HookFailed
from core.events import (
    OUTGOING_EVENTS,
    CommittedEvent,
    DeliveryBatch,
    DeliveryOutcome,
    EventName,
    IncomingDelivered,
    OutgoingEvent,
    Submission,
)
from core.hookspecs import DEFAULT_TIME_LIMIT, DELIVERY_TIME_LIMIT, hookimpl
from core.plugin_api import (
    BlueprintFactory,
    CliCommand,
    CtlCommand,
    CtlHandler,
    CtlRequest,
    CtlResult,
    HTTPService,
    Metrics,
    PluginConfigError,
    PluginContext,
    Rejection,
)
from core.queue.clock import Clock
from core.services import (
    ExportPage,
    ExportQuery,
    HoldRuleAdmin,
    ImportRequest,
    OwnDomainAnswers,
    Redelivered,
    RedeliverQuery,
    ServiceError,
    SuppressionEntry,
    SuppressionProvider,
    WebhookAdmin,
    WebhookRedeliverer,
)
from core.store.migrations import Migration
from core.store.models import QueueEntry
from core.store.sql import Connection as SQLConnection
from core.store.sql import DatabaseError, IntegrityError, upsert

__all__ = [
    # declaring hook implementations
    "hookimpl",
    # what hooks receive and return
    "PluginContext",
    "Rejection",
    "PluginConfigError",
    "HookFailed",
    "Clock",
    "Metrics",
    "DEFAULT_TIME_LIMIT",
    "DELIVERY_TIME_LIMIT",
    # start-up: tables, commands, HTTP services
    "Migration",
    # the portable SQL surface of in-transaction hooks (SQLite and PostgreSQL)
    "SQLConnection",
    "DatabaseError",
    "IntegrityError",
    "upsert",
    "CtlCommand",
    "CliCommand",
    "CtlHandler",
    "CtlRequest",
    "CtlResult",
    "HTTPService",
    "BlueprintFactory",
    # events of the mail flow
    "Submission",
    "QueueEntry",
    "DeliveryBatch",
    "DeliveryOutcome",
    "DeliveryResult",
    "RecipientResult",
    "OutgoingEvent",
    "CommittedEvent",
    "OUTGOING_EVENTS",
    "EventName",
    "IncomingDelivered",
    # services one plugin offers another: ctx.provide(P, impl) / ctx.service(P)
    "ServiceError",
    "SuppressionProvider",
    "SuppressionEntry",
    "ExportQuery",
    "ExportPage",
    "ImportRequest",
    "WebhookRedeliverer",
    "RedeliverQuery",
    "Redelivered",
    "WebhookAdmin",
    "HoldRuleAdmin",
    "OwnDomainAnswers",
]
