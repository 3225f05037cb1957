"""Delivery to our own SMTP listener, against a real SMTP server.

The aiosmtpd sink (own process) stands in for our SMTP listener: the test
makes it the address of the config's ``local`` listener.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from core.config import Config, Transport, TransportFail
from core.delivery.client import DeliveryResult
from core.dispatch import HookDispatcher
from core.events import DeliveryBatch
from core.store.models import QueueEntry, utcnow
from plugins.localserve.deliver import merge_results, plan_transactions
from plugins.localserve.settings import Timeouts
from tests.support.smtpsink import SMTPSink, open_smtp_sink

from .conftest import MakeCtx

BODY = b"From: mox@localhost\r\nTo: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n.dot line\r\n"
PREFIX = b"Received: from localhost by localhost; Mon, 24 Nov 2026 00:00:00 +0000\r\n"


def use_sink(config: Config, sink: SMTPSink) -> None:
    listener = config.static.Listeners["local"]
    listener.IPs = [sink.host, "::1"]
    listener.SMTP.Port = sink.port


def batch(tmp_path: Path, recipients: list[str], **kw: object) -> DeliveryBatch:
    path = tmp_path / "msg.eml"
    path.write_bytes(BODY)
    return DeliveryBatch(
        entries=kw.pop("entries", []),  # type: ignore[arg-type]
        message_path=str(path),
        msg_prefix=PREFIX,
        mail_from="mox@localhost",
        recipients=recipients,
        domain="example.org",
        **kw,  # type: ignore[arg-type]
    )


async def deliver(
    dispatcher: HookDispatcher, ctx: object, b: DeliveryBatch
) -> DeliveryResult | None:
    with trio.fail_after(15):
        return await dispatcher.first("moxtrio_deliver", ctx=ctx, batch=b)


async def test_delivers_batch_to_local_listener(
    tmp_path: Path, config: Config, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    async with open_smtp_sink(tmp_path / "sink", starttls=True) as sink:
        use_sink(config, sink)
        rcpts = ["a@example.org", "b@example.org"]
        result = await deliver(dispatcher, make_ctx(), batch(tmp_path, rcpts))
        assert isinstance(result, DeliveryResult)
        assert [r.ok for r in result.recipients] == [True, True]
        assert result.host == "localhost" and result.port == sink.port
        assert result.ip == "127.0.0.1" and result.dialed_ips == ["127.0.0.1"]
        assert result.tls  # opportunistic STARTTLS, self-signed cert not verified
        msgs = sink.messages()
    assert len(msgs) == 1  # one transaction for the batch
    m = msgs[0]
    assert m.mail_from == "mox@localhost"
    assert m.rcpt_tos == rcpts
    assert m.ehlo == "localhost"
    assert m.tls
    assert m.data == PREFIX + BODY


async def test_550_is_a_permanent_per_recipient_result(
    tmp_path: Path, config: Config, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    async with open_smtp_sink(
        tmp_path / "sink", rcpt_replies={"bad@example.org": "550 5.1.1 no such user"}
    ) as sink:
        use_sink(config, sink)
        result = await deliver(
            dispatcher, make_ctx(), batch(tmp_path, ["good@example.org", "bad@example.org"])
        )
        msgs = sink.messages()
    assert result is not None
    good, bad = result.recipients
    assert good.ok and good.recipient == "good@example.org"
    assert not bad.ok and bad.permanent
    assert (bad.code, bad.enhanced_code) == (550, "5.1.1")
    assert bad.error.startswith(f"delivering message to 127.0.0.1:{sink.port}: ")
    assert result.error == ""  # no transaction-level failure
    assert [m.rcpt_tos for m in msgs] == [["good@example.org"]]


async def test_550_at_data_for_a_single_recipient(
    tmp_path: Path, config: Config, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    reply = "550 5.0.0 failure with code 550 due to special localpart (abc)"
    async with open_smtp_sink(
        tmp_path / "sink", data_replies={"userpermerror@example.org": reply}
    ) as sink:
        use_sink(config, sink)
        result = await deliver(
            dispatcher, make_ctx(), batch(tmp_path, ["userpermerror@example.org"])
        )
    assert result is not None
    (r,) = result.recipients
    assert not r.ok and r.permanent and r.code == 550 and r.enhanced_code == "5.0.0"
    assert r.line == reply


async def test_data_failure_of_one_recipient_is_not_lost_in_a_shared_transaction(
    tmp_path: Path, config: Config, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    """docs/differences.md, item 4: the recipient our listener fails at DATA gets its own
    transaction, so the other is delivered and this one reported failed."""
    reply = "550 5.0.0 failure with code 550 due to special localpart (abc)"
    async with open_smtp_sink(
        tmp_path / "sink", data_replies={"zpermerror@batch.example": reply}
    ) as sink:
        use_sink(config, sink)
        rcpts = ["ok1@batch.example", "zpermerror@batch.example", "ok2@batch.example"]
        result = await deliver(dispatcher, make_ctx(), batch(tmp_path, rcpts))
        msgs = sink.messages()
    assert result is not None
    assert [r.recipient for r in result.recipients] == rcpts
    assert [r.ok for r in result.recipients] == [True, False, True]
    assert result.recipients[1].permanent and result.recipients[1].code == 550
    assert result.error == ""
    assert [m.rcpt_tos for m in msgs] == [["ok1@batch.example", "ok2@batch.example"]]


async def test_connection_refused_is_temporary_code_0(
    tmp_path: Path, config: Config, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    listener = config.static.Listeners["local"]
    listener.SMTP.Port = port
    result = await deliver(dispatcher, make_ctx(), batch(tmp_path, ["a@example.org"]))
    assert result is not None
    (r,) = result.recipients
    assert not r.ok and not r.permanent and r.code == 0
    assert r.error == f"dial tcp 127.0.0.1:{port}: connect: connection refused"


async def test_read_timeout_is_overridable_and_temporary(
    tmp_path: Path, config: Config, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    async with open_smtp_sink(tmp_path / "sink", stall_data=True) as sink:
        use_sink(config, sink)
        ctx = make_ctx()
        ctx.settings_overrides["localserve"] = {"read_timeout": 0.5}
        # The sink stalls DATA for good: an answer at all is the read timeout's doing.
        with trio.fail_after(30):
            result = await deliver(dispatcher, ctx, batch(tmp_path, ["usertimeout@slow.example"]))
    assert result is not None
    (r,) = result.recipients
    assert not r.ok and not r.permanent and r.code == 0
    assert "data: reading line from remote: read tcp" in r.error and "i/o timeout" in r.error


async def test_timeouts_from_settings_file(
    tmp_path: Path, config: Config, make_ctx: MakeCtx
) -> None:
    from core.plugin_api import PluginConfigError
    from plugins.localserve.settings import load_timeouts

    assert load_timeouts(make_ctx()) == Timeouts(30.0, 60.0, 30.0, None)
    plugdir = Path(config.dir) / "plugins"
    plugdir.mkdir()
    (plugdir / "localserve.yaml").write_text("read_timeout: 2\ndial_timeout: 1.5\n")
    ctx = make_ctx()
    assert load_timeouts(ctx) == Timeouts(1.5, 60.0, 2.0, None)
    ctx.settings_overrides["localserve"] = {"data_timeout": 7}
    assert load_timeouts(ctx) == Timeouts(1.5, 60.0, 2.0, 7.0)
    ctx.settings_overrides["localserve"] = {"read_timeout": 0.1}
    assert load_timeouts(ctx).read_timeout == 0.1
    for bad in ("read_timeout: -1\n", "read_timeout: soon\n", "bogus: 1\n"):
        (plugdir / "localserve.yaml").write_text(bad)
        try:
            make_ctx()
        except Exception as exc:  # the dispatcher wraps start-up errors
            assert isinstance(exc.__cause__, PluginConfigError), exc
        else:
            raise AssertionError(f"accepted {bad!r}")


async def test_target_selection(config: Config, make_ctx: MakeCtx) -> None:
    from plugins.localserve.settings import Target, delivery_target

    ctx = make_ctx()
    assert delivery_target(ctx) == Target("localhost", ["127.0.0.1"], 1025)
    listener = config.static.Listeners["local"]
    listener.IPs = ["127.0.0.4", "::1"]
    listener.SMTP.Port = 0
    assert delivery_target(ctx) == Target("localhost", ["127.0.0.4"], 1025)
    listener.SMTP.Port = 2525
    assert delivery_target(ctx) == Target("localhost", ["127.0.0.4"], 2525)
    listener.SMTP.Enabled = False
    assert delivery_target(ctx) == Target("localhost", None, 1025)
    del config.static.Listeners["local"]
    assert delivery_target(ctx) == Target("localhost", None, 1025)


async def test_nothing_when_not_localserve(
    tmp_path: Path, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    assert (
        await deliver(dispatcher, make_ctx(localserve=False), batch(tmp_path, ["a@x.example"]))
        is None
    )


async def test_fail_transport_takes_precedence(
    tmp_path: Path, config: Config, make_ctx: MakeCtx, dispatcher: HookDispatcher
) -> None:
    config.static.Transports["failnow"] = Transport(Fail=TransportFail(SMTPCode=554))
    now = utcnow()
    e = QueueEntry(
        queued=now,
        next_attempt=now,
        sender_account="mox",
        sender_localpart="mox",
        sender_domain="localhost",
        sender_domain_str="localhost",
        recipient_localpart="a",
        recipient_domain="x.example",
        recipient_domain_str="x.example",
        transport="failnow",
    )
    assert (
        await deliver(dispatcher, make_ctx(), batch(tmp_path, ["a@x.example"], entries=[e])) is None
    )


def test_plan_transactions() -> None:
    assert plan_transactions(["a@x"]) == [[0]]
    assert plan_transactions(["userpermerror@x"]) == [[0]]
    assert plan_transactions(["a@x", "b@x"]) == [[0, 1]]
    assert plan_transactions(["a@x", "u550@x", "b@x", "ctimeout@x"]) == [[0, 2], [1], [3]]
    # rcptto… recipients fail at RCPT, which is per recipient already
    assert plan_transactions(["a@x", "rcpttopermerror@x"]) == [[0, 1]]
    assert plan_transactions(["u451@x", "v550@x"]) == [[0], [1]]


def test_merge_results_reports_error_only_when_all_failed() -> None:
    from core.delivery.client import RecipientResult

    ok = DeliveryResult(
        "localhost", 25, [RecipientResult("a@x", ok=True)], ip="127.0.0.1", connected=True
    )
    bad = DeliveryResult(
        "localhost", 25, [RecipientResult("b@x", ok=False, code=421)], error="boom", code=421
    )
    m = merge_results("localhost", 25, 2, [[1], [0]], [ok, bad])
    assert [r.recipient for r in m.recipients] == ["b@x", "a@x"]
    assert m.error == "" and m.connected
    m = merge_results("localhost", 25, 2, [[0], [1]], [bad, bad])
    assert m.error == "boom" and m.code == 421


async def test_hook_time_limit_fits_a_whole_delivery(
    make_ctx: MakeCtx, dispatcher: HookDispatcher, config: Config
) -> None:
    """The standard 30 s limit would cut off a 30 s read timeout: moxtrio_deliver
    declares a delivery-sized limit, and the plugin no longer edits the dispatcher."""
    from core.plugin_api import PluginConfigError

    before = dict(dispatcher.time_limits)
    make_ctx()
    assert dispatcher.time_limits == before
    # dial 2x30 + session 60 + data 60 + 100 (MiB of max message size) + margin
    assert dispatcher.time_limit_for("moxtrio_deliver") == 2 * 30 + 60 + 60 + 100 + 15
    assert dispatcher.time_limit_for("moxtrio_submission") == 20.0
    # Timeouts that cannot fit the declared limit stop start-up with the remedy named.
    plugdir = Path(config.dir) / "plugins"
    plugdir.mkdir()
    (plugdir / "localserve.yaml").write_text("read_timeout: 30\ndial_timeout: 200\n")
    with pytest.raises(Exception) as info:  # noqa: B017 - the dispatcher wraps start-up errors
        make_ctx()
    assert isinstance(info.value.__cause__, PluginConfigError)
    assert "raise time_limits: moxtrio_deliver in plugins/hooks.yaml" in str(info.value)
