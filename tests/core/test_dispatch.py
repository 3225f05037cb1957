"""The async hook dispatcher: order, awaiting, first result, failure policy."""

from __future__ import annotations

import sqlite3
from types import SimpleNamespace

import pluggy
import pytest
import trio
import trio.lowlevel

from core import hookspecs
from core.dispatch import HookDispatcher, HookFailed
from core.events import OutgoingEvent, Submission
from core.hookspecs import hookimpl
from core.plugin_api import Rejection


def make(*plugins: object, time_limit: float = 5.0) -> HookDispatcher:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    # Registered in reverse, as core.plugins does, so call order = argument order.
    for i, p in reversed(list(enumerate(plugins))):
        pm.register(p, name=f"p{i}")
    return HookDispatcher(pm, time_limit=time_limit)


def submission() -> Submission:
    return Submission(account="a", source="smtp", mail_from="a@x", recipients=["b@y"], headers=[])


async def test_sync_and_async_implementations_run_in_registration_order() -> None:
    calls: list[str] = []

    class Plain:
        @hookimpl
        def moxtrio_smtp_rcpt_to(self, address: str) -> None:
            calls.append("plain " + address)

    class Async:
        @hookimpl
        async def moxtrio_smtp_rcpt_to(self, address: str) -> None:
            await trio.lowlevel.checkpoint()
            calls.append("async " + address)

    d = make(Plain(), Async())
    result = await d.first("moxtrio_smtp_rcpt_to", ctx=None, listener_kind="smtp", address="x@y")
    assert result is None
    assert calls == ["plain x@y", "async x@y"]


async def test_first_result_stops_at_first_answer_even_when_async() -> None:
    seen: list[str] = []

    class Rejecter:
        @hookimpl
        async def moxtrio_submission(self, submission: Submission) -> Rejection:
            seen.append("rejecter")
            return Rejection(554, "5.6.0", "no")

    class Later:
        @hookimpl
        def moxtrio_submission(self, submission: Submission) -> None:
            seen.append("later")

    d = make(Rejecter(), Later())
    result = await d.first("moxtrio_submission", ctx=None, submission=submission())
    assert result == Rejection(554, "5.6.0", "no")
    assert seen == ["rejecter"]


async def test_tryfirst_is_honoured() -> None:
    order: list[str] = []

    class A:
        @hookimpl
        def moxtrio_smtp_mail_from(self) -> None:
            order.append("a")

    class B:
        @hookimpl(tryfirst=True)
        def moxtrio_smtp_mail_from(self) -> None:
            order.append("b")

    await make(B(), A()).call("moxtrio_smtp_mail_from", ctx=None, listener_kind="smtp", address="")
    assert order == ["b", "a"]


async def test_verdict_hook_fails_closed_with_plugin_name() -> None:
    class Broken:
        @hookimpl
        def moxtrio_submission(self) -> None:
            raise RuntimeError("boom")

    with pytest.raises(HookFailed) as info:
        await make(Broken()).first("moxtrio_submission", ctx=None, submission=submission())
    assert info.value.plugin == "p0"
    assert "boom" in str(info.value)


async def test_verdict_hook_time_limit_fails_closed() -> None:
    class Slow:
        @hookimpl
        async def moxtrio_submission(self) -> None:
            await trio.sleep(10)

    with trio.fail_after(3):
        with pytest.raises(HookFailed, match="no answer within"):
            await make(Slow(), time_limit=0.05).first("moxtrio_submission", ctx=None, submission=submission())


async def test_observer_hook_fails_open() -> None:
    got: list[str] = []

    class Broken:
        @hookimpl
        def moxtrio_outgoing_event(self) -> None:
            raise RuntimeError("observer down")

    class Fine:
        @hookimpl
        def moxtrio_outgoing_event(self, event: OutgoingEvent) -> None:
            got.append(event.event)

    event = OutgoingEvent(account="a", event="delivered", queue_msg_id=1, from_id="", message_id="", subject="")
    results = await make(Broken(), Fine()).call("moxtrio_outgoing_event", conn=None, event=event)
    assert results == []
    assert got == ["delivered"]


def test_in_transaction_observer_failure_rolls_back_only_its_own_writes(tmp_path) -> None:
    conn = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    conn.execute("create table t (v text)")

    class Writer:
        @hookimpl
        def moxtrio_outgoing_event(self, conn: sqlite3.Connection) -> None:
            conn.execute("insert into t values ('kept')")

    class HalfWriter:
        @hookimpl
        def moxtrio_outgoing_event(self, conn: sqlite3.Connection) -> None:
            conn.execute("insert into t values ('rolled back')")
            raise RuntimeError("after a write")

    d = make(Writer(), HalfWriter())
    event = SimpleNamespace(event="failed")
    conn.execute("begin")
    conn.execute("insert into t values ('core')")
    d.call_sync("moxtrio_outgoing_event", conn=conn, event=event)
    conn.execute("commit")
    assert sorted(r[0] for r in conn.execute("select v from t")) == ["core", "kept"]


def test_in_transaction_hooks_must_not_be_async() -> None:
    class AsyncInTx:
        @hookimpl
        async def moxtrio_queue_adding(self) -> None:
            return None

    with pytest.raises(HookFailed, match="must not be async"):
        make(AsyncInTx()).call_sync("moxtrio_queue_adding", conn=None, entries=[])


def test_first_sync_returns_first_answer() -> None:
    class No:
        @hookimpl
        def moxtrio_suppress_decision(self) -> None:
            return None

    class Yes:
        @hookimpl
        def moxtrio_suppress_decision(self) -> bool:
            return True

    assert make(No(), Yes()).first_sync("moxtrio_suppress_decision", conn=None, entry=None, outcome=None) is True


def test_every_hookspec_has_a_kind_and_a_docstring() -> None:
    names = [n for n in dir(hookspecs) if n.startswith("moxtrio_")]
    assert names, "no hooks declared"
    for name in names:
        assert name in hookspecs.HOOK_KINDS, name
        doc = getattr(hookspecs, name).__doc__ or ""
        assert len(doc.strip()) > 40, f"{name} needs a docstring that states its contract"
