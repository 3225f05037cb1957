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

    await make(B(), A()).run("moxtrio_smtp_mail_from", ctx=None, listener_kind="smtp", address="")
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


# -- rules come from the specification, not from the call site ---------------


async def test_run_follows_firstresult_of_the_spec() -> None:
    class Yes:
        @hookimpl
        def moxtrio_smtp_rcpt_to(self) -> Rejection:
            return Rejection(550, "5.7.1", "first")

        @hookimpl
        def moxtrio_ctl_commands(self) -> list[str]:
            return ["a"]

    class Also:
        @hookimpl
        def moxtrio_smtp_rcpt_to(self) -> Rejection:
            return Rejection(550, "5.7.1", "second")

    d = make(Yes(), Also())
    # firstresult=True in the spec: one answer, the first.
    got = await d.run("moxtrio_smtp_rcpt_to", ctx=None, listener_kind="smtp", address="x@y")
    assert got == Rejection(550, "5.7.1", "first")
    # Asking for the wrong convention at a call site is refused, both ways.
    with pytest.raises(TypeError, match="moxtrio_smtp_rcpt_to is firstresult"):
        await d.call("moxtrio_smtp_rcpt_to", ctx=None, listener_kind="smtp", address="x@y")
    with pytest.raises(TypeError, match="moxtrio_outgoing_event is not firstresult"):
        d.first_sync("moxtrio_outgoing_event", conn=None, event=None)
    with pytest.raises(TypeError, match="not a start-up hook"):
        d.setup("moxtrio_smtp_rcpt_to", ctx=None, listener_kind="smtp", address="x@y")
    assert d.setup("moxtrio_ctl_commands", ctx=None) == ["a"]


def test_hook_without_a_declared_kind_is_an_error_at_start_up() -> None:
    from core.dispatch import HookContractError

    class Specs:
        @hookspecs.hookspec
        def moxtrio_kindless(self, ctx: object) -> None:
            """A hook whose declaration forgot @_kind."""

    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.add_hookspecs(Specs)
    with pytest.raises(HookContractError, match="hook moxtrio_kindless declares no kind"):
        HookDispatcher(pm)


@pytest.mark.parametrize("marker", ["wrapper=True", "hookwrapper=True"])
def test_wrappers_are_refused_at_registration_naming_plugin_and_hook(
    marker: str, tmp_path, monkeypatch
) -> None:
    from core.dispatch import HookContractError
    from core.plugins import create_manager

    module = f"wrapping_{marker.split('=')[0]}"
    (tmp_path / f"{module}.py").write_text(
        "from core.hookspecs import hookimpl\n"
        f"@hookimpl({marker})\n"
        "def moxtrio_submission():\n"
        "    yield\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(HookContractError) as info:
        create_manager([module])
    assert str(info.value) == (
        f"plugin '{module}': moxtrio_submission is marked as a pluggy wrapper "
        "(wrapper=True/hookwrapper=True); moxtrio does not support hook wrappers, "
        "implement the hook as a plain function"
    )


def test_time_limits_are_declared_per_hook_and_overridable() -> None:
    d = make()
    # Delivery hooks get a delivery-sized limit; the others the standard one.
    assert d.time_limit_for("moxtrio_deliver") == hookspecs.DELIVERY_TIME_LIMIT
    assert d.time_limit_for("moxtrio_deliver") > 4 * 60
    assert d.time_limit_for("moxtrio_smtp_rcpt_to") == 5.0
    d = HookDispatcher(d.pm, time_limits={"default": 7.0, "moxtrio_deliver": 900.0})
    assert d.time_limit_for("moxtrio_smtp_rcpt_to") == 7.0
    assert d.time_limit_for("moxtrio_deliver") == 900.0
    assert HookDispatcher(d.pm).time_limit_for("moxtrio_submission") == hookspecs.DEFAULT_TIME_LIMIT


async def test_declared_limit_applies_per_hook() -> None:
    """A delivery-sized limit on moxtrio_deliver does not extend other hooks."""

    class Slow:
        @hookimpl
        async def moxtrio_deliver(self) -> str:
            await trio.sleep(0.2)
            return "delivered"

        @hookimpl
        async def moxtrio_submission(self) -> None:
            await trio.sleep(10)

    d = make(Slow(), time_limit=0.1)
    with trio.fail_after(5):
        assert await d.run("moxtrio_deliver", ctx=None, batch=None) == "delivered"
        with pytest.raises(HookFailed, match="no answer within 0.1s"):
            await d.run("moxtrio_submission", ctx=None, submission=submission())


def test_hooks_yaml_overrides_limits_and_rejects_bad_values(tmp_path) -> None:
    from core.hooklimits import load_time_limits
    from core.plugin_api import PluginConfigError

    assert load_time_limits(tmp_path) == {}
    (tmp_path / "plugins").mkdir()
    path = tmp_path / "plugins" / "hooks.yaml"
    path.write_text("time_limits:\n  default: 45\n  moxtrio_deliver: 600\n")
    assert load_time_limits(tmp_path) == {"default": 45.0, "moxtrio_deliver": 600.0}
    bad = {
        "time_limits:\n  moxtrio_nosuch: 5\n": "no hook named 'moxtrio_nosuch'",
        "time_limits:\n  moxtrio_deliver: -1\n": "moxtrio_deliver must be a positive number",
        "time_limits:\n  default: soon\n": "default must be a number of seconds",
        "time_limits: 5\n": "time_limits must map hook names to seconds",
        "timelimits: {}\n": "unknown setting(s): timelimits",
    }
    for text, message in bad.items():
        path.write_text(text)
        with pytest.raises(PluginConfigError) as info:
            load_time_limits(tmp_path)
        assert str(info.value).startswith(f"{path}: ")
        assert message in str(info.value)


async def test_wrapper_registered_after_start_up_is_refused_when_called() -> None:
    from core.dispatch import HookContractError

    class Late:
        @hookimpl(wrapper=True)
        def moxtrio_submission(self):  # type: ignore[no-untyped-def]
            return (yield)

    d = make()
    d.pm.register(Late(), name="late")
    with pytest.raises(HookContractError, match="plugin 'late': moxtrio_submission is marked"):
        await d.run("moxtrio_submission", ctx=None, submission=submission())
