"""Services one plugin offers another, as typed Protocols.

A plugin never imports another plugin. When one needs what another owns
(the webapi answering SuppressionList from the suppression plugin's lists),
the owner registers an object under one of these Protocols at configure
time (``ctx.provide(SuppressionProvider, impl)``) and the user finds it in
the server's context (``ctx.service(SuppressionProvider)``, None when no
plugin offers it). The Protocol is the whole contract: method names,
argument and result types, and the one error type, :class:`ServiceError`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from core.mailauth.lookup import Lookup
    from core.queue.clock import Clock


class ServiceError(Exception):
    """A refusal a service's caller passes on as is.

    ``code`` is one of the webapi's error codes (``badAddress``, ``user``,
    ``error``...), ``message`` (also ``str(exc)``) its text; the webapi
    answers 400 with both.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


# -- suppression lists ----------------------------------------------------------


class SuppressionEntry(Protocol):
    """One entry of an account's suppression list, as callers read it."""

    @property
    def id(self) -> int: ...
    @property
    def created(self) -> datetime: ...
    @property
    def account(self) -> str: ...
    @property
    def base_address(self) -> str: ...
    @property
    def original_address(self) -> str: ...
    @property
    def manual(self) -> bool: ...
    @property
    def reason(self) -> str: ...


@dataclass(frozen=True)
class ExportPage:
    """One page of an export: text in the asked format and the cursor of the next page ("" at the end)."""

    text: str
    next: str


@dataclass(frozen=True)
class ExportQuery:
    """Which entries an export lists and how (``format``: ``csv`` or ``json``)."""

    format: str = "csv"
    category: str = ""
    contains: str = ""
    after: str = ""
    limit: int = 2000


@dataclass(frozen=True)
class ImportRequest:
    """A list to import and the defaults for its lines (``until``: RFC 3339 or "")."""

    data: str
    format: str = "csv"
    category: str = ""
    reason: str = ""
    until: str = ""


class SuppressionProvider(Protocol):
    """Per-account suppression lists (the suppression plugin provides them).

    Every method acts on ``account``'s list only; an empty account is
    refused (every account's list is the administrator's, through
    commands). Addresses are parsed by the provider: a bad one raises
    ``ServiceError("badAddress", ...)``; a duplicate add or an absent
    remove raises ``ServiceError("error", ...)`` as mox answers.
    """

    async def list_suppressions(self, account: str) -> Sequence[SuppressionEntry]: ...

    async def add_suppression(self, account: str, address: str, *, manual: bool, reason: str) -> None: ...

    async def remove_suppression(self, account: str, address: str) -> None: ...

    async def is_suppressed(self, account: str, address: str) -> bool: ...

    async def export_suppressions(self, account: str, query: ExportQuery) -> ExportPage: ...

    async def import_suppressions(self, account: str, request: ImportRequest) -> int:
        """All or nothing: any bad line raises ``ServiceError("user", ...)`` naming every bad line."""
        ...


# -- webhooks ----------------------------------------------------------------------


@dataclass(frozen=True)
class RedeliverQuery:
    """Which retired webhooks to queue again: by ID, or by submission time range."""

    ids: list[int] = field(default_factory=list)
    since: str = ""
    until: str = ""
    only_failed: bool = False


@dataclass(frozen=True)
class Redelivered:
    """One retired webhook queued again (``id`` 0 and ``error`` set when it could not be)."""

    original_id: int
    id: int
    error: str = ""


class WebhookRedeliverer(Protocol):
    """Queue retired webhooks again as new webhooks (the webhooks plugin provides it).

    A bad query (unknown time format, nothing selected) raises
    ``ServiceError("user", ...)``.
    """

    async def redeliver(self, account: str, query: RedeliverQuery) -> list[Redelivered]: ...


@dataclass
class HookFilter:
    """mox's ``queue.HookFilter``: which queued webhooks an admin operation selects.

    ``Submitted`` and ``NextAttempt`` are mox's time expressions (``<-1h``,
    ``>+30m``); ``Event`` is an outgoing event name or ``incoming``.
    """

    Max: int = 0
    IDs: list[int] | None = None
    Account: str = ""
    Submitted: str = ""
    NextAttempt: str = ""
    Event: str = ""


@dataclass
class HookRetiredFilter:
    """mox's ``queue.HookRetiredFilter``: which retired webhooks a listing selects."""

    Max: int = 0
    IDs: list[int] | None = None
    Account: str = ""
    Submitted: str = ""
    LastActivity: str = ""
    Event: str = ""


class WebhookAdmin(Protocol):
    """The webhook queue's admin operations (the webhooks plugin provides them).

    What mox's admin interface offers for webhooks. Filters and sorts carry
    mox's field names (``IDs``, ``Account``, ``Event``...; ``Field``,
    ``LastID``, ``Last``, ``Asc``); listed hooks have ``to_json()`` with
    mox's JSON shape, plus ``account`` and ``queue_msg_id``. A bad filter
    raises ``core.sqlfilter.FilterError``.
    """

    @property
    def clock(self) -> Clock: ...

    async def queue_size(self) -> int: ...

    async def list(self, f: Any = None, sort: Any = None) -> Sequence[Any]: ...

    async def retired_list(self, f: Any = None, sort: Any = None) -> Sequence[Any]: ...

    async def next_attempt_set(self, f: Any, when: datetime) -> int: ...

    async def next_attempt_add(self, f: Any, delta: timedelta) -> int: ...

    async def cancel(self, f: Any) -> int: ...

    async def redeliver(self, ids: builtins.list[int]) -> builtins.list[int]:
        """Queue retired webhooks ``ids`` again as new webhooks (a moxtrio extension).

        All or none: raises ValueError naming the first that cannot be
        redelivered. Returns the new webhooks' IDs in the order of ``ids``.
        """
        ...


# -- hold rules --------------------------------------------------------------------


class HoldRuleAdmin(Protocol):
    """Queue hold rules (the holdrules plugin provides them).

    Rules have ``to_json()`` with mox's HoldRule shape. ``add`` raises
    ValueError for a domain that does not parse, ``remove`` LookupError for
    an unknown rule.
    """

    async def list(self) -> Sequence[Any]: ...

    async def add(self, account: str = "", sender_domain: str = "", recipient_domain: str = "") -> Any: ...

    async def remove(self, rule_id: int) -> None: ...


# -- mail authentication of the server's own mail -----------------------------------


class OwnDomainAnswers(Protocol):
    """Answers to mail authentication's DNS questions for domains the server vouches for.

    A development server delivers its own mail back to itself, and its
    domains have no DNS. The plugin that runs such a server provides this
    service; the delivery listener's SPF and DKIM checks then use its
    lookups instead of DNS (mox does the same in its local mode). Without
    it, every check asks DNS.
    """

    @property
    def localhost_is_mail_domain(self) -> bool:
        """Treat ``localhost`` as a mail domain: MAIL FROM ``localhost`` needs no
        DNS check, DKIM signatures by ``d=localhost`` are verified rather than
        refused as a public suffix."""
        ...

    async def lookups(self, msg_from_domain: str, remote_ip: str) -> tuple[Lookup | None, Lookup | None]:
        """(SPF lookup, DKIM lookup) for a message whose From domain is
        ``msg_from_domain``, received from ``remote_ip``; None where DNS applies."""
        ...
