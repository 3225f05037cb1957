"""Automatic additions through the in-transaction hook, in a real store.

The hook runs the way the core queue runs it: ``first_sync`` inside a
``store.write`` transaction, with the failed entry still in the queue
(queue path) or already retired (DSN path), and retired history built with
the core's own row functions.
"""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from typing import Any

import pytest

from core.dispatch import HookDispatcher
from core.events import DeliveryOutcome
from core.plugin_api import PluginContext
from core.store import Store
from core.store.models import utcnow
from plugins.suppression.records import Suppression, list_suppressions
from tests.suppression.helpers import minutes, queue_entry, retired_entry


def failed(code: int, enhanced: str = "", event: Any = "failed") -> DeliveryOutcome:
    return DeliveryOutcome(
        event=event, permanent=code >= 500, smtp_code=code, smtp_enhanced_code=enhanced, error="x"
    )


async def decide(store: Store, hooks: HookDispatcher, entry: Any, outcome: DeliveryOutcome) -> Any:
    def write(conn: sqlite3.Connection) -> Any:
        assert conn.in_transaction
        return hooks.first_sync(
            "moxtrio_suppress_decision", conn=conn, entry=entry, outcome=outcome
        )

    return await store.write(write)


async def listed(store: Store, account: str = "") -> list[Suppression]:
    return await store.read(lambda c: list_suppressions(c, account))


@pytest.mark.parametrize("code", [521, 550, 551, 553, 556])
async def test_immediate_codes_suppress_on_first_failure(
    store: Store, dispatcher: HookDispatcher, code: int
) -> None:
    e = await queue_entry(store, "John.Doe+news@Example.org")
    before = utcnow()
    assert await decide(store, dispatcher, e, failed(code, "5.0.0")) is True
    [s] = await listed(store)
    assert s.account == "mox"
    assert s.base_address == "johndoe@example.org"
    assert s.original_address == "John.Doe+news@example.org"
    assert s.manual is False
    assert s.reason == f'delivery failure from queue with smtp code {code}, enhanced code "0.0"'
    assert before - timedelta(seconds=1) <= s.created <= utcnow()
    assert s.id > 0


@pytest.mark.parametrize("secode", ["1.1", "1.2", "1.3", "1.6", "2.1", "7.1"])
async def test_immediate_enhanced_codes(
    store: Store, dispatcher: HookDispatcher, secode: str
) -> None:
    e = await queue_entry(store, "user@example.org")
    assert await decide(store, dispatcher, e, failed(554, f"5.{secode}")) is True
    [s] = await listed(store)
    assert s.reason == f'delivery failure from queue with smtp code 554, enhanced code "{secode}"'


async def test_no_enhanced_code_quotes_empty(store: Store, dispatcher: HookDispatcher) -> None:
    e = await queue_entry(store, "user@example.org")
    assert await decide(store, dispatcher, e, failed(550)) is True
    [s] = await listed(store)
    assert s.reason == 'delivery failure from queue with smtp code 550, enhanced code ""'


@pytest.mark.parametrize(
    ("code", "enhanced"), [(554, "5.0.0"), (451, "4.0.0"), (452, "4.2.2"), (552, "5.3.4")]
)
async def test_not_immediate_without_history(
    store: Store, dispatcher: HookDispatcher, code: int, enhanced: str
) -> None:
    e = await queue_entry(store, "user@example.org")
    assert await decide(store, dispatcher, e, failed(code, enhanced)) is False
    assert await listed(store) == []


async def test_code_zero_never_suppresses(store: Store, dispatcher: HookDispatcher) -> None:
    # Timeouts, connection and DNS errors: even with failed history.
    for i in range(2):
        await retired_entry(store, "user@example.org", success=False, at=minutes(i))
    e = await queue_entry(store, "user@example.org")
    assert await decide(store, dispatcher, e, failed(0)) is False
    assert await listed(store) == []


async def test_third_consecutive_failure_suppresses(
    store: Store, dispatcher: HookDispatcher
) -> None:
    # Observed sequence: failures #1 and #2 don't suppress, #3 does.
    rcpt = "three554@other.example"
    e1 = await queue_entry(store, rcpt)
    assert await decide(store, dispatcher, e1, failed(554, "5.0.0")) is False
    await retired_entry(store, rcpt, success=False, at=minutes(1))
    e2 = await queue_entry(store, rcpt)
    assert await decide(store, dispatcher, e2, failed(554, "5.0.0")) is False
    await retired_entry(store, rcpt, success=False, at=minutes(2))
    e3 = await queue_entry(store, rcpt)
    assert await decide(store, dispatcher, e3, failed(554, "5.0.0")) is True
    [s] = await listed(store)
    assert s.reason == "delivery failure from queue and three consecutive failures"
    assert (s.base_address, s.original_address, s.manual) == (rcpt, rcpt, False)


async def test_451_after_attempts_only_by_consecutive_rule(
    store: Store, dispatcher: HookDispatcher
) -> None:
    rcpt = "slow@example.org"
    await retired_entry(store, rcpt, success=False, at=minutes(1))
    await retired_entry(store, rcpt, success=False, at=minutes(2))
    e = await queue_entry(store, rcpt)
    assert await decide(store, dispatcher, e, failed(451, "4.0.0")) is True
    [s] = await listed(store)
    assert s.reason == "delivery failure from queue and three consecutive failures"


async def test_most_recent_success_breaks_the_run(store: Store, dispatcher: HookDispatcher) -> None:
    rcpt = "flaky@example.org"
    await retired_entry(store, rcpt, success=False, at=minutes(1))
    await retired_entry(store, rcpt, success=False, at=minutes(2))
    await retired_entry(store, rcpt, success=True, at=minutes(3))
    e = await queue_entry(store, rcpt)
    assert await decide(store, dispatcher, e, failed(554, "5.0.0")) is False
    # Ordering is by LastActivity, not by ID: an old success with a newer
    # LastActivity (a later DSN) still counts as most recent.
    rcpt2 = "order@example.org"
    ok = await retired_entry(store, rcpt2, success=True, at=minutes(1))
    await retired_entry(store, rcpt2, success=False, at=minutes(2))
    await retired_entry(store, rcpt2, success=False, at=minutes(3))

    def touch(conn: sqlite3.Connection) -> None:
        from core.store.models import to_db_time

        conn.execute(
            "UPDATE retired SET last_activity = ? WHERE id = ?", (to_db_time(minutes(10)), ok.id)
        )

    await store.write(touch)
    e2 = await queue_entry(store, rcpt2)
    assert await decide(store, dispatcher, e2, failed(554, "5.0.0")) is False
    assert await listed(store) == []


async def test_only_exact_recipient_history_counts(
    store: Store, dispatcher: HookDispatcher
) -> None:
    # The rule compares full addresses, not base addresses.
    await retired_entry(store, "john.doe@example.org", success=False, at=minutes(1))
    await retired_entry(store, "johndoe+x@example.org", success=False, at=minutes(2))
    e = await queue_entry(store, "johndoe@example.org")
    assert await decide(store, dispatcher, e, failed(554, "5.0.0")) is False
    assert await listed(store) == []


async def test_dsn_path_excludes_the_message_itself(
    store: Store, dispatcher: HookDispatcher
) -> None:
    # In the DSN path the failed message is already retired; it must not count
    # as one of the two earlier failures.
    rcpt = "bounce@example.org"
    await retired_entry(store, rcpt, success=False, at=minutes(1))
    current = await retired_entry(store, rcpt, success=False, at=minutes(2))
    assert await decide(store, dispatcher, current, failed(554, "5.0.0")) is False
    await retired_entry(store, rcpt, success=False, at=minutes(3))
    current2 = await retired_entry(store, rcpt, success=False, at=minutes(4))
    assert await decide(store, dispatcher, current2, failed(554, "5.0.0")) is True
    [s] = await listed(store)
    assert s.reason == "delivery failure from DSN and three consecutive failures"


async def test_dsn_path_immediate_reason(store: Store, dispatcher: HookDispatcher) -> None:
    current = await retired_entry(store, "gone@example.org", success=True, at=minutes(1))
    assert await decide(store, dispatcher, current, failed(550, "5.1.1")) is True
    [s] = await listed(store)
    assert s.reason == 'delivery failure from DSN with smtp code 550, enhanced code "1.1"'


async def test_already_listed_adds_nothing(store: Store, dispatcher: HookDispatcher) -> None:
    e1 = await queue_entry(store, "John.Doe@example.org")
    assert await decide(store, dispatcher, e1, failed(550, "5.0.0")) is True
    # Another variant of the same base address: no new entry, Suppressing false.
    e2 = await queue_entry(store, "johndoe+x@example.org")
    assert await decide(store, dispatcher, e2, failed(550, "5.1.1")) is False
    [s] = await listed(store)
    assert s.original_address == "John.Doe@example.org"


async def test_lists_are_per_account(store: Store, dispatcher: HookDispatcher) -> None:
    e1 = await queue_entry(store, "user@example.org", account="mox")
    e2 = await queue_entry(store, "user@example.org", account="other")
    assert await decide(store, dispatcher, e1, failed(550, "5.0.0")) is True
    # Listed for mox does not mean listed for other: other gets its own entry.
    assert await decide(store, dispatcher, e2, failed(550, "5.0.0")) is True
    assert [s.account for s in await listed(store)] == ["mox", "other"]
    assert [s.account for s in await listed(store, "other")] == ["other"]


async def test_addition_rolls_back_with_the_transaction(
    store: Store, dispatcher: HookDispatcher
) -> None:
    # The entry commits with the core's retire, or not at all.
    e = await queue_entry(store, "user@example.org")

    def write(conn: sqlite3.Connection) -> None:
        assert dispatcher.first_sync(
            "moxtrio_suppress_decision", conn=conn, entry=e, outcome=failed(550, "5.0.0")
        )
        raise RuntimeError("core failed later in the same transaction")

    with pytest.raises(RuntimeError):
        await store.write(write)
    assert await listed(store) == []


async def test_service_registered(ctx: PluginContext) -> None:
    from plugins.suppression import SuppressionService

    assert isinstance(ctx.service(SuppressionService), SuppressionService)
