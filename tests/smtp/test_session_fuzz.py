"""Property test: random and malformed command streams never break a session.

(In memory, fast, many examples; tests/smtp_e2e/test_fuzz_sockets.py does the
same over real sockets against both ports of a running server.)

Each example runs a Session over an in-memory stream pair, writes a random
command stream (sometimes in one write, sometimes in pieces), half-closes,
and checks that every reply line is a well-formed ``ddd[ -]...`` line, that
the session returned by itself, and that nothing was logged as unhandled.
"""

from __future__ import annotations

import base64
import logging
import re

import trio
import trio.lowlevel
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.loginlimit import LoginLimiter
from core.smtp.handler import MemoryHandler, SessionInfo
from core.smtp.session import Session, SessionConfig

REPLY = re.compile(rb"^[0-9]{3}[ -][^\r\n]*$")

GOOD_PLAIN = base64.b64encode(b"\0u@x.example\0pw").decode()

FRAGMENTS = [
    "EHLO client.example",
    "HELO client.example",
    "EHLO [127.0.0.1]",
    "EHLO",
    "MAIL FROM:<a@example.org>",
    "MAIL FROM:<u@x.example> SIZE=100 BODY=8BITMIME SMTPUTF8",
    "MAIL FROM:<> HOLDFOR=10",
    "MAIL FROM:<u@x.example> HOLDUNTIL=2999-01-01T00:00:00Z",
    'MAIL FROM:<"q u"@[IPv6:::1]>',
    "MAIL FROM:<ñ@ü.example>",
    "RCPT TO:<b@mox.example>",
    "RCPT TO:<postmaster>",
    "RCPT TO:<x@[1.2.3.4]> NOTIFY=NEVER",
    "DATA",
    ".",
    "..",
    "Subject: x",
    "",
    "AUTH PLAIN " + GOOD_PLAIN,
    "AUTH PLAIN",
    GOOD_PLAIN,
    "AUTH LOGIN",
    "AUTH SCRAM-SHA-256 biwsbj11QHguZXhhbXBsZSxyPWFiYw==",
    "AUTH SCRAM-SHA-256",
    "AUTH SCRAM-SHA-1 biwsbj11QHguZXhhbXBsZSxyPWFiYw==",
    "AUTH SCRAM-SHA-256-PLUS cD10bHMtZXhwb3J0ZXIsLG49dSxyPWFiYw==",
    "AUTH CRAM-MD5",
    "dUB4LmV4YW1wbGUgMDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
    "*",
    "=",
    "STARTTLS",
    "RSET",
    "NOOP",
    'NOOP "x',
    "VRFY <a@b>",
    "EXPN list",
    "HELP",
    "BDAT 5 LAST",
    "QUIT",
]

line_st = st.one_of(
    st.sampled_from(FRAGMENTS).map(str.encode),
    st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=60),  # Also invalid UTF-8 and NUL.
)
sep_st = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"])


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def run_session(kind: str, chunks: list[bytes]) -> bytes:
    handler = MemoryHandler(kind, logins={"u@x.example": ("u", "pw")}, iterations=16)  # type: ignore[arg-type]
    config = SessionConfig(
        auth_fail_delay=0, idle_timeout=2, max_line_length=512, require_tls_for_auth=False
    )
    info = SessionInfo(
        conn_id="AAAAAAAAAAAAAAAAAAAAAA",
        listener_kind=kind,  # type: ignore[arg-type]
        hostname="localhost",
        remote_ip="127.0.0.1",
        remote_port=1234,
        local_ip="127.0.0.1",
        local_port=25,
    )
    client, server = trio.testing.memory_stream_pair()
    session = Session(server, handler, config, info, auth_limiter=LoginLimiter())
    received = bytearray()
    done = trio.Event()

    async def serve() -> None:
        await session.run()
        done.set()
        await trio.aclose_forcefully(server)

    async def read() -> None:
        while True:
            try:
                data = await client.receive_some(65536)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return
            if not data:
                return
            received.extend(data)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve)
            nursery.start_soon(read)
            for chunk in chunks:
                try:
                    await client.send_all(chunk)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    break
                await trio.lowlevel.checkpoint()
            try:
                await client.send_eof()
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await done.wait()
    return bytes(received)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(["smtp", "submission"]),
    lines=st.lists(st.tuples(line_st, sep_st), max_size=25),
    split=st.lists(st.integers(1, 40), max_size=10),
)
def test_random_command_streams(kind: str, lines: list[tuple[bytes, bytes]], split: list[int]) -> None:
    wire = b"".join(line + sep for line, sep in lines)
    chunks = []
    pos = 0
    for n in split:
        chunks.append(wire[pos : pos + n])
        pos += n
    chunks.append(wire[pos:])
    collect = _Collect()
    logger = logging.getLogger("moxtrio.smtp")
    logger.addHandler(collect)
    try:
        out = trio.run(run_session, kind, chunks)
    finally:
        logger.removeHandler(collect)
    assert collect.records == [], [r.getMessage() for r in collect.records]
    assert out.endswith(b"\r\n")
    lines_out = out[:-2].split(b"\r\n")
    assert lines_out[0] == b"220 localhost ESMTP moxtrio"
    for line in lines_out:
        assert REPLY.match(line), line
        assert len(line) <= 512


def test_fuzz_harness_sees_a_full_transaction() -> None:
    # Guard against a harness that trivially passes: a valid stream must
    # produce the full, expected reply sequence.
    wire = (
        b"EHLO x\r\nAUTH PLAIN " + GOOD_PLAIN.encode() + b"\r\nMAIL FROM:<u@x.example>\r\n"
        b"RCPT TO:<b@mox.example>\r\nDATA\r\nSubject: x\r\n\r\nhi\r\n.\r\nQUIT\r\n"
    )
    out = trio.run(run_session, "submission", [wire])
    assert b"235 2.7.0 nice\r\n" in out
    assert b"250 2.0.0 it is done\r\n" in out
    assert out.endswith(b"221 2.0.0 okay thanks bye\r\n")
