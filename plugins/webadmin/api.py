"""The admin API: mox's ``webadmin`` functions for the queue, hold rules and webhooks.

Names, parameter order and JSON shapes are mox's, so scripts written
against mox's ``/admin/api/`` work. The operations are the ones the
``queue ...`` commands use: the core queue (``ctx.queue``), and the core's
``HoldRuleAdmin`` and ``WebhookAdmin`` services that the holdrules and
webhooks plugins provide (``ctx.service(...)``); without such a plugin its
functions answer a server error saying so.

Two additions beyond mox: ``QueueList``/``RetiredList`` attempts carry
``MXHost`` and ``TLS`` after mox's fields, and ``HookRetiredRedeliver``
queues retired webhooks again (``WebhookAdmin.redeliver``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from core import sherpa
from core.queue.admin import QueueFilter, QueueSort, RetiredFilter, RetiredSort
from core.services import HookFilter, HookRetiredFilter
from core.sherpa import Function, SherpaError, user_error
from core.sqlfilter import FilterError, Sort
from core.webui.iface import Call
from moxtrio import HoldRuleAdmin, WebhookAdmin
from plugins.webadmin.auth_state import AdminWebAuth
from plugins.webadmin.shapes import HoldRuleIn, msg_json, retired_msg_json


def _service(call: Call, name: str) -> Any:
    svc: Any
    if name == "queue":
        svc = call.ctx.queue if call.ctx.has_queue else None
    else:
        kind = {"holdrules": HoldRuleAdmin, "webhooks": WebhookAdmin}[name]
        svc = call.ctx.service(kind)  # type: ignore[type-abstract]
    if svc is None:
        raise SherpaError(sherpa.SERVER_ERROR, f"{name}: no plugin offers this service")
    return svc


def _auth(call: Call) -> Any:
    return call.ctx.require(AdminWebAuth)


async def _run(what: str, aw: Any) -> Any:
    """Await an operation; a bad filter is the caller's error, as mox's ErrRequest."""
    try:
        return await aw
    except FilterError as exc:
        raise user_error(f"{what}: {exc}") from None


async def login_prep(call: Call) -> str:
    return _auth(call).login_prep(call.req)  # type: ignore[no-any-return]


async def login(call: Call, login_token: str, password: str) -> str:
    return await _auth(call).login(call.req, login_token, "", password)  # type: ignore[no-any-return]


async def logout(call: Call) -> None:
    assert call.session is not None
    await _auth(call).logout(call.req, call.session)


# -- queue ------------------------------------------------------------------------------


async def queue_size(call: Call) -> int:
    return await _service(call, "queue").count()  # type: ignore[no-any-return]


async def queue_list(call: Call, f: QueueFilter, sort: QueueSort) -> list[dict[str, Any]]:
    entries = await _run("listing messages in queue", _service(call, "queue").list(f, sort))
    return [msg_json(e) for e in entries]


async def queue_next_attempt_set(call: Call, f: QueueFilter, minutes: int) -> int:
    q = _service(call, "queue")
    when = q.clock.now() + timedelta(minutes=minutes)
    return await _run("setting next attempt", q.next_attempt_set(f, when))  # type: ignore[no-any-return]


async def queue_next_attempt_add(call: Call, f: QueueFilter, minutes: int) -> int:
    q = _service(call, "queue")
    return await _run("adding to next attempt", q.next_attempt_add(f, timedelta(minutes=minutes)))  # type: ignore[no-any-return]


async def queue_hold_set(call: Call, f: QueueFilter, on_hold: bool) -> int:
    q = _service(call, "queue")
    return await _run("changing onhold", q.hold(f) if on_hold else q.unhold(f))  # type: ignore[no-any-return]


async def queue_fail(call: Call, f: QueueFilter) -> int:
    return await _run("fail messages in queue", _service(call, "queue").fail(f))  # type: ignore[no-any-return]


async def queue_drop(call: Call, f: QueueFilter) -> int:
    return await _run("drop messages from queue", _service(call, "queue").drop(f))  # type: ignore[no-any-return]


async def queue_require_tls_set(call: Call, f: QueueFilter, require_tls: bool | None) -> int:
    return await _run("update requiretls", _service(call, "queue").requiretls(f, require_tls))  # type: ignore[no-any-return]


async def queue_transport_set(call: Call, f: QueueFilter, transport: str) -> int:
    return await _run("changing transport", _service(call, "queue").transport(f, transport))  # type: ignore[no-any-return]


async def retired_list(call: Call, f: RetiredFilter, sort: RetiredSort) -> list[dict[str, Any]]:
    entries = await _run("listing retired messages", _service(call, "queue").retired_list(f, sort))
    return [retired_msg_json(e) for e in entries]


# -- hold rules ----------------------------------------------------------------------------


async def hold_rule_list(call: Call) -> list[dict[str, Any]]:
    return [r.to_json() for r in await _service(call, "holdrules").list()]


async def hold_rule_add(call: Call, hr: HoldRuleIn) -> dict[str, Any]:
    svc = _service(call, "holdrules")
    try:
        rule = await svc.add(hr.Account, hr.SenderDomainStr, hr.RecipientDomainStr)
    except ValueError as exc:  # the plugin's error for a domain that does not parse
        raise user_error(f"parsing domain: {exc}") from None
    return rule.to_json()  # type: ignore[no-any-return]


async def hold_rule_remove(call: Call, rule_id: int) -> None:
    try:
        await _service(call, "holdrules").remove(rule_id)
    except LookupError as exc:
        raise user_error(f"removing queue hold rule: {exc}") from None


# -- webhooks -------------------------------------------------------------------------------


async def hook_queue_size(call: Call) -> int:
    return await _service(call, "webhooks").queue_size()  # type: ignore[no-any-return]


async def hook_list(call: Call, f: HookFilter, sort: Sort) -> list[dict[str, Any]]:
    hooks = await _run("listing hook queue", _service(call, "webhooks").list(f, sort))
    return [h.to_json() for h in hooks]


async def hook_next_attempt_set(call: Call, f: HookFilter, minutes: int) -> int:
    svc = _service(call, "webhooks")
    when = svc.clock.now() + timedelta(minutes=minutes)
    return await _run("setting next attempt", svc.next_attempt_set(f, when))  # type: ignore[no-any-return]


async def hook_next_attempt_add(call: Call, f: HookFilter, minutes: int) -> int:
    svc = _service(call, "webhooks")
    return await _run("adding to next attempt", svc.next_attempt_add(f, timedelta(minutes=minutes)))  # type: ignore[no-any-return]


async def hook_retired_list(call: Call, f: HookRetiredFilter, sort: Sort) -> list[dict[str, Any]]:
    hooks = await _run("listing retired hooks", _service(call, "webhooks").retired_list(f, sort))
    return [h.to_json() for h in hooks]


async def hook_retired_redeliver(call: Call, ids: list[int]) -> list[int]:
    """Queue retired webhooks again as new webhooks (a moxtrio extension, not in mox).

    All of ``ids`` or none: a webhook that cannot be redelivered (unknown,
    or its account has no webhook URL now) is the caller's error and
    nothing is queued. Each new webhook's calls carry
    ``X-Mox-Webhook-Redelivery-Of`` with the original's ID. Returns the new
    IDs, in the order of ``ids``.
    """
    try:
        return await _service(call, "webhooks").redeliver(ids)  # type: ignore[no-any-return]
    except ValueError as exc:
        raise user_error(f"redelivering webhooks: {exc}") from None


async def hook_cancel(call: Call, f: HookFilter) -> int:
    return await _run("cancel hooks in queue", _service(call, "webhooks").cancel(f))  # type: ignore[no-any-return]


FUNCTIONS: dict[str, Function] = {
    "LoginPrep": Function(login_prep, ()),
    "Login": Function(login, (str, str)),
    "Logout": Function(logout, ()),
    "QueueSize": Function(queue_size, ()),
    "QueueHoldRuleList": Function(hold_rule_list, ()),
    "QueueHoldRuleAdd": Function(hold_rule_add, (HoldRuleIn,)),
    "QueueHoldRuleRemove": Function(hold_rule_remove, (int,)),
    "QueueList": Function(queue_list, (QueueFilter, QueueSort)),
    "QueueNextAttemptSet": Function(queue_next_attempt_set, (QueueFilter, int)),
    "QueueNextAttemptAdd": Function(queue_next_attempt_add, (QueueFilter, int)),
    "QueueHoldSet": Function(queue_hold_set, (QueueFilter, bool)),
    "QueueFail": Function(queue_fail, (QueueFilter,)),
    "QueueDrop": Function(queue_drop, (QueueFilter,)),
    "QueueRequireTLSSet": Function(queue_require_tls_set, (QueueFilter, bool | None)),
    "QueueTransportSet": Function(queue_transport_set, (QueueFilter, str)),
    "RetiredList": Function(retired_list, (RetiredFilter, RetiredSort)),
    "HookQueueSize": Function(hook_queue_size, ()),
    "HookList": Function(hook_list, (HookFilter, Sort)),
    "HookNextAttemptSet": Function(hook_next_attempt_set, (HookFilter, int)),
    "HookNextAttemptAdd": Function(hook_next_attempt_add, (HookFilter, int)),
    "HookRetiredList": Function(hook_retired_list, (HookRetiredFilter, Sort)),
    "HookCancel": Function(hook_cancel, (HookFilter,)),
    "HookRetiredRedeliver": Function(hook_retired_redeliver, (list[int],)),
}
