"""core.delivery.client.deliver against a scripted SMTP peer (trio, loopback) for
behaviour a real server doesn't easily produce: stalls, 421, HELO-only
servers, multi-line replies, strict pipelining."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from core.delivery.client import DeliveryResult, deliver, dot_stuff_chunks
from tests.smtp_client.conftest import RawPeer

MSG = b"Subject: t\r\n\r\nbody\r\n"
RawServer = Callable[[Callable[[RawPeer], Awaitable[None]]], Awaitable[int]]


async def send(port: int, recipients: list[str], **kw: Any) -> DeliveryResult:
    args: dict[str, Any] = dict(
        host="localhost",
        ips=["127.0.0.1"],
        port=port,
        ehlo_name="moxtrio.example",
        mail_from="s@moxtrio.example",
        recipients=recipients,
        data=MSG,
        read_timeout=5,
    )
    args.update(kw)
    with trio.fail_after(20):
        return await deliver(**args)


async def test_server_that_never_greets_times_out(raw_server: RawServer) -> None:
    async def script(peer: RawPeer) -> None:
        await trio.sleep(30)

    port = await raw_server(script)
    # The peer stays silent for 30 s: answering well before that is the timeout's doing.
    with trio.fail_after(15):
        res = await send(port, ["a@x.example"], read_timeout=0.5)
    assert res.connected and not res.permanent and res.code == 0
    assert re.fullmatch(
        rf"\(greeting\): reading line from remote: read tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:{port}: "
        r"i/o timeout, transient",
        res.error,
    ), res.error
    assert res.recipients[0].error == res.error and res.recipients[0].code == 0


async def test_stall_at_end_of_data_gives_mox_timeout_text(raw_server: RawServer) -> None:
    got: list[bytes] = []

    async def script(peer: RawPeer) -> None:
        await peer.ehlo_session(["PIPELINING", "ENHANCEDSTATUSCODES"])
        for _ in range(3):  # MAIL, RCPT, DATA, pipelined
            got.append(await peer.readline())
        await peer.send("250 2.1.0 ok")
        await peer.send("250 2.1.5 ok")
        await peer.send("354 go")
        got.append(await peer.read_data())
        await trio.sleep(30)  # never answer the final dot

    port = await raw_server(script)
    res = await send(port, ["usertimeout@x.example"], read_timeout=0.5)
    [r] = res.recipients
    assert (r.ok, r.permanent, r.code) == (False, False, 0)
    # mox's text: "...: data: reading line from remote: read tcp …: i/o timeout, transient"
    assert re.fullmatch(
        rf"delivering message to 127\.0\.0\.1:{port}: data: reading line from remote: "
        rf"read tcp 127\.0\.0\.1:\d+->127\.0\.0\.1:{port}: i/o timeout, transient",
        r.error,
    ), r.error
    assert got[0].startswith(b"MAIL FROM:<s@moxtrio.example>") and got[3] == MSG


async def test_overall_data_timeout_bounds_a_trickling_server(raw_server: RawServer) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.ehlo_session([])
        await peer.readline()
        # Reply one byte at a time, slower than the phase deadline allows.
        for ch in "250 ok\r\n":
            await peer.stream.send_all(ch.encode())
            await trio.sleep(0.3)

    port = await raw_server(script)
    res = await send(port, ["a@x.example"], read_timeout=1, data_timeout=0.8)
    assert "mailfrom: reading line from remote" in res.error and "i/o timeout" in res.error


async def test_pipelining_sends_mail_rcpts_and_data_before_reading(raw_server: RawServer) -> None:
    lines: list[bytes] = []

    async def script(peer: RawPeer) -> None:
        await peer.ehlo_session(["PIPELINING", "SIZE 1000000", "8BITMIME"])
        # Read the whole group before answering anything: a client that waits
        # for the MAIL reply would deadlock here (and time out).
        for _ in range(4):
            lines.append(await peer.readline())
        await peer.send("250 ok")
        await peer.send("250 ok")
        await peer.send("550 no")
        await peer.send("354 go")
        lines.append(await peer.read_data())
        await peer.send("250 queued")
        lines.append(await peer.readline())
        await peer.send("221 bye")

    port = await raw_server(script)
    res = await send(port, ["a@x.example", "b@x.example"], read_timeout=2)
    assert [r.ok for r in res.recipients] == [True, False]
    assert lines[0] == f"MAIL FROM:<s@moxtrio.example> SIZE={len(MSG)} BODY=7BIT".encode()
    assert lines[1:4] == [b"RCPT TO:<a@x.example>", b"RCPT TO:<b@x.example>", b"DATA"]
    assert lines[4] == MSG and lines[5] == b"QUIT"
    # Without ENHANCEDSTATUSCODES no secode is parsed.
    assert res.recipients[0].secode == "" and res.recipients[1].enhanced_code == ""


async def test_421_at_rcpt_fails_all_remaining_temporarily(raw_server: RawServer) -> None:
    seen: list[bytes] = []

    async def script(peer: RawPeer) -> None:
        await peer.ehlo_session(["ENHANCEDSTATUSCODES"])
        seen.append(await peer.readline())
        await peer.send("250 2.1.0 ok")
        seen.append(await peer.readline())
        await peer.send("550 5.1.1 unknown")
        seen.append(await peer.readline())
        await peer.send("250 2.1.5 ok")
        seen.append(await peer.readline())
        await peer.send("421 4.7.0 closing connection")
        try:
            while True:
                seen.append(await peer.readline())
        except EOFError:
            pass

    port = await raw_server(script)
    res = await send(port, ["gone@x.example", "ok@x.example", "c@x.example", "d@x.example"])
    gone, ok, c, d = res.recipients
    assert (gone.permanent, gone.code) == (True, 550)
    for r in (ok, c, d):
        assert (r.ok, r.permanent, r.code, r.secode) == (False, False, 421, "7.0")
    assert res.code == 421 and not res.permanent
    # No further commands (no RCPT for d, no DATA, no QUIT) after 421.
    assert [s.split(b":")[0] for s in seen] == [b"MAIL FROM", b"RCPT TO", b"RCPT TO", b"RCPT TO"]


async def test_421_to_pipelined_mail_fails_all_without_quit(raw_server: RawServer) -> None:
    seen: list[bytes] = []

    async def script(peer: RawPeer) -> None:
        await peer.ehlo_session(["PIPELINING", "ENHANCEDSTATUSCODES"])
        for _ in range(4):
            seen.append(await peer.readline())
        await peer.send("421 4.3.2 shutting down")
        try:
            while True:
                seen.append(await peer.readline())
        except EOFError:
            pass

    port = await raw_server(script)
    res = await send(port, ["a@x.example", "b@x.example"])
    for r in res.recipients:
        assert (r.ok, r.permanent, r.code, r.enhanced_code) == (False, False, 421, "4.3.2")
    assert len(seen) == 4 and b"QUIT" not in seen


async def test_permanent_greeting_rejection(raw_server: RawServer) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.send("554 raw.example no service for you")
        await peer.readline()  # QUIT
        await peer.send("221 bye")

    port = await raw_server(script)
    res = await send(port, ["a@x.example"])
    assert res.permanent and res.recipients[0].permanent and res.code == 554


async def test_missing_message_file_is_temporary(tmp_path: Any) -> None:
    res = await send(1, ["a@x.example"], data=tmp_path / "gone.eml")
    assert not res.connected and not res.permanent
    assert res.error == "open message file: no such file or directory"


async def test_421_greeting_is_temporary(raw_server: RawServer) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.send("421 raw.example too busy")

    port = await raw_server(script)
    res = await send(port, ["a@x.example"])
    [r] = res.recipients
    assert (r.ok, r.permanent, r.code) == (False, False, 421)
    assert res.error == (
        "remote smtp server sent unexpected response status code: expected 220, got 421, "
        "transient: 421 raw.example too busy"
    )


async def test_helo_fallback_and_multiline_reply(raw_server: RawServer) -> None:
    seen: list[bytes] = []

    async def script(peer: RawPeer) -> None:
        await peer.send("220 old.example SMTP")
        seen.append(await peer.readline())
        await peer.send("502 what is EHLO")
        seen.append(await peer.readline())
        await peer.send("250 old.example")
        seen.append(await peer.readline())
        await peer.send("250 ok")
        seen.append(await peer.readline())
        await peer.send("550-first line of rejection")
        await peer.send("550 second line")
        seen.append(await peer.readline())
        await peer.send("250 reset")  # client sends QUIT; any reply will do

    port = await raw_server(script)
    res = await send(port, ["a@x.example"])
    [r] = res.recipients
    assert seen[0] == b"EHLO moxtrio.example" and seen[1] == b"HELO moxtrio.example"
    # HELO-only server: no ESMTP parameters on MAIL.
    assert seen[2] == b"MAIL FROM:<s@moxtrio.example>"
    assert seen[4] == b"QUIT"
    assert (r.permanent, r.code, r.line, r.more_lines) == (
        True,
        550,
        "550-first line of rejection",
        ["550 second line"],
    )
    assert r.reply_lines == ["550-first line of rejection", "550 second line"]
    assert res.remote_helo == "old.example"


async def test_protocol_garbage_is_temporary(raw_server: RawServer) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.send("hello, I am not an smtp server")
        await trio.sleep(5)

    port = await raw_server(script)
    res = await send(port, ["a@x.example"])
    assert not res.permanent and res.code == 0
    assert res.error.startswith("smtp protocol error: expected response code: hello")


async def test_connection_closed_mid_transaction(raw_server: RawServer) -> None:
    async def script(peer: RawPeer) -> None:
        await peer.ehlo_session([])
        await peer.readline()  # MAIL, then hang up

    port = await raw_server(script)
    res = await send(port, ["a@x.example"])
    [r] = res.recipients
    assert (r.ok, r.permanent, r.code) == (False, False, 0)
    assert r.error == (
        f"delivering message to 127.0.0.1:{port}: mailfrom: reading line from remote: EOF, "
        "transient"
    )


# -- dot-stuffing as a property: any chunking gives the same, correct output.


def _reference(data: bytes) -> bytes:
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    out = b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines)
    return out + b".\r\n"


async def _stuff(chunks: list[bytes]) -> bytes:
    async def gen() -> Any:
        for c in chunks:
            yield c

    return b"".join([c async for c in dot_stuff_chunks(gen())])


@settings(max_examples=300, deadline=None)
@given(
    # Alphabet that makes line starts, dots and split CRLFs likely.
    parts=st.lists(st.sampled_from([b".", b"..", b"\n", b"\r\n", b"a", b"\xff"]), max_size=40),
    cuts=st.lists(st.integers(min_value=0, max_value=80), max_size=6),
)
def test_dot_stuffing_independent_of_chunking(parts: list[bytes], cuts: list[int]) -> None:
    data = b"".join(parts)
    points = sorted({min(c, len(data)) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    assert trio.run(_stuff, chunks) == _reference(data)
