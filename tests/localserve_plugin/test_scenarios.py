"""Localserve's scenario localparts (moxtrio extension), end to end in a running
localserve: each produces its documented sequence of outgoing webhook events."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import trio

from plugins.localserve.scenarios import Scenario, scenario_of
from tests.support.inproc import localserve_config_dir, running_server
from tests.support.procs import localserve
from tests.webhooks.helpers import account_edit, receiver
from tests.webhooks.test_e2e import Env

EVENTS = ["delivered", "delayed", "failed", "suppressed", "complaint"]


def events_of(env: Env, qid: int) -> list[str]:
    return [p["Event"] + ("+dsn" if p["DSN"] else "") for p in env.out() if p["QueueMsgID"] == qid]


async def wait_events(env: Env, qid: int, want: list[str], timeout: float = 20.0) -> None:
    with trio.move_on_after(timeout):
        while events_of(env, qid) != want:
            await trio.sleep(0.05)
    assert events_of(env, qid) == want


async def start_env(tmp_path: Path, settings: dict[str, Any]) -> AsyncIterator[Env]:
    async with receiver() as rec:
        edit = account_edit(out_url=rec.url("/out"), events=EVENTS)
        directory, _ = localserve_config_dir(tmp_path, edit_domains=edit)
        async with running_server(directory, settings={"localserve": settings}) as server:
            yield Env(server, rec)


@pytest.fixture
async def fast(tmp_path: Path) -> AsyncIterator[Env]:
    async for env in start_env(tmp_path, {"fast_retries": True,
                                          "followup_delay": 0.2}):
        yield env


@pytest.fixture
async def slow(tmp_path: Path) -> AsyncIterator[Env]:
    async for env in start_env(tmp_path, {}):
        yield env


def test_scenario_localparts() -> None:
    assert scenario_of("usertempthenok@example.org") == Scenario("tempthenok")
    assert scenario_of("a.delay5@example.org") == Scenario("delay", 5)
    assert scenario_of("delay999@example.org") == Scenario("delay", 60)
    assert scenario_of("xcomplaint@example.org") == Scenario("complaint")
    assert scenario_of("latebounce@example.org") == Scenario("latebounce")
    assert scenario_of("delayed@example.org") is None
    assert scenario_of("user@example.org") is None
    assert scenario_of("usertemperror@example.org") is None


async def test_tempthenok_fails_once_then_delivers_with_fast_retries(fast: Env) -> None:
    qid = await fast.send("usertempthenok@example.org")
    await wait_events(fast, qid, ["delayed", "delivered"])
    [delayed] = [p for p in fast.out() if p["Event"] == "delayed"]
    assert delayed["SMTPCode"] == 451 and "next attempt succeeds" in delayed["Error"]


async def test_delay_delivers_after_n_seconds(fast: Env) -> None:
    t0 = time.monotonic()
    qid = await fast.send("userdelay2@example.org")
    other = await fast.send("plain@example.org")
    await wait_events(fast, other, ["delivered"])
    assert events_of(fast, qid) == []  # still waiting while the plain one is done
    await wait_events(fast, qid, ["delivered"])
    assert time.monotonic() - t0 >= 2.0


async def test_latebounce_delivers_then_fails_by_dsn(fast: Env) -> None:
    qid = await fast.send("userlatebounce@example.org")
    await wait_events(fast, qid, ["delivered", "failed+dsn"])
    [failed] = [p for p in fast.out() if p["Event"] == "failed"]
    assert failed["SMTPCode"] == 550 and failed["SMTPEnhancedCode"] == "5.1.1"


async def test_complaint_delivers_then_complains_and_suppresses(fast: Env) -> None:
    qid = await fast.send("usercomplaint@example.org")
    await wait_events(fast, qid, ["delivered", "complaint"])
    [complaint] = [p for p in fast.out() if p["Event"] == "complaint"]
    assert complaint["Suppressing"] is True
    again = await fast.send("usercomplaint@example.org")
    await wait_events(fast, again, ["suppressed"])


async def test_retry_now_command_without_fast_retries(slow: Env) -> None:
    qid = await slow.send("usertempthenok@example.org")
    await wait_events(slow, qid, ["delayed"])
    await trio.sleep(1.5)
    assert events_of(slow, qid) == ["delayed"]  # the 7m30s backoff holds it
    res = await slow.cli("localserve", "retry-now")
    assert res.exit_code == 0 and res.output == "1 message(s) scheduled for immediate retry\n"
    await wait_events(slow, qid, ["delayed", "delivered"])
    assert (await slow.cli("localserve", "retry-now", "x")).exit_code == 2


@pytest.mark.slow
def test_fast_retries_flag(tmp_path: Path) -> None:
    with localserve(tmp_path, "-fast-retries") as server:
        server.wait_for("fast retries: waiting retries are made due every 1s")
