"""Fuzzing a running server's SMTP ports over real sockets.

A child ``moxtrio localserve`` gets random and mutated command streams (raw
bytes: invalid UTF-8, NUL, bare CR/LF, long lines, SASL exchanges, DATA) on
the delivery port (1025) and the submission port (1587). Each connection
comes from its own loopback source address, so the per-IP limits (failed
logins above all) do not turn the run into a series of refusals. For every
connection: a greeting, only well-formed reply lines, and the connection
ends after the client half-closes (nothing is left hanging). Afterwards the
server still runs, still delivers, and logged no traceback.

Seeded (derandomized) and bounded: a fixed number of examples, each with
socket timeouts.
"""

from __future__ import annotations

import base64
import random
import re
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.procs import ServerProcess, run_cli, running, unique_loopback_ip

pytestmark = pytest.mark.slow

REPLY = re.compile(rb"^[0-9]{3}[ -][^\r\n]*$")
TIMEOUT = 10.0
GOOD_PLAIN = base64.b64encode(b"\0mox@localhost\0moxmoxmox").decode()
# An unknown user: the exchange runs on decoy credentials. (Failed SCRAM
# exchanges for the real account would use up its failed-login budget, and
# then the health check's login at the end would be refused.)
SCRAM_FIRST = base64.b64encode(b"n,,n=nobody@example.org,r=abcdefghijkl").decode()

FRAGMENTS: list[bytes] = [
    s.encode()
    for s in [
        "EHLO client.example",
        "HELO client.example",
        "EHLO",
        "MAIL FROM:<mox@localhost>",
        "MAIL FROM:<a@example.org> SIZE=100 BODY=8BITMIME SMTPUTF8",
        "MAIL FROM:<> HOLDFOR=10",
        "MAIL FROM:<mox@localhost> REQUIRETLS",
        "MAIL FROM:<ñ@ü.example> SMTPUTF8",
        "RCPT TO:<mox@localhost>",
        "RCPT TO:<nosuchuser@localhost>",
        "RCPT TO:<postmaster>",
        "RCPT TO:<x@[1.2.3.4]> NOTIFY=NEVER",
        "RCPT TO:<rcptto552@localhost>",
        "DATA",
        ".",
        "..",
        "From: mox@localhost",
        "Subject: fuzz",
        "",
        "AUTH PLAIN " + GOOD_PLAIN,
        "AUTH PLAIN",
        GOOD_PLAIN,
        "AUTH LOGIN",
        "AUTH CRAM-MD5",
        "AUTH SCRAM-SHA-256 " + SCRAM_FIRST,
        "AUTH SCRAM-SHA-1-PLUS " + SCRAM_FIRST,
        "AUTH SCRAM-SHA-1",
        "*",
        "=",
        "STARTTLS",
        "RSET",
        "NOOP",
        "VRFY <a@b>",
        "HELP",
        "BDAT 5 LAST",
        "QUIT",
    ]
] + [b"\xff\xfe\xfd", b"NOOP \x00", b"MAIL FROM:<\xc3(@localhost>", b"x" * 3000, b"\r", b"\x00\x00"]

line_st = st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=80))
sep_st = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b"\r\r\n"])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    directory: Path = tmp_path_factory.mktemp("fuzz") / "localserve"
    ip = unique_loopback_ip()
    assert run_cli("localserve", "-dir", str(directory), "-ip", ip, "-initonly").returncode == 0
    # No growing per-connection wait after failed AUTHs: a stream of failing
    # attempts would otherwise keep the connection busy long after the client
    # is done (that wait is tested on its own).
    (directory / "plugins").mkdir()
    (directory / "plugins" / "smtp.yaml").write_text("AuthFailDelay: 0\n")
    with running(["localserve", "-dir", str(directory)], directory, ip) as srv:
        yield srv


def source_ip(rng: random.Random) -> str:
    """A loopback source address in a /21 of its own most of the time."""
    return f"127.{rng.randint(1, 99)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"


def exchange(server: ServerProcess, port: int, src: str, chunks: list[bytes]) -> bytes:
    """Connect, send the chunks, half-close; everything the server answered until it closed."""
    sock = socket.create_connection((server.ip, port), timeout=TIMEOUT, source_address=(src, 0))
    received = bytearray()
    try:
        for chunk in chunks:
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break
            except TimeoutError:
                raise AssertionError(
                    f"port {port}: no end of connection within {TIMEOUT}s; got {bytes(received)[-300:]!r}"
                ) from None
            if not data:
                break
            received += data
    finally:
        sock.close()
    return bytes(received)


@settings(
    max_examples=80,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    port=st.sampled_from([1025, 1587]),
    lines=st.lists(st.tuples(line_st, sep_st), max_size=20),
    split=st.lists(st.integers(1, 60), max_size=8),
    seed=st.integers(0, 2**32 - 1),
)
def test_random_command_streams_on_both_ports(
    server: ServerProcess, port: int, lines: list[tuple[bytes, bytes]], split: list[int], seed: int
) -> None:
    wire = b"".join(line + sep for line, sep in lines)
    chunks, pos = [], 0
    for n in split:
        chunks.append(wire[pos : pos + n])
        pos += n
    chunks.append(wire[pos:])
    out = exchange(server, port, source_ip(random.Random(seed)), [c for c in chunks if c])
    assert out, f"port {port}: no greeting"
    assert out.startswith(b"220 ") or out.startswith(b"421 "), out[:200]
    complete = out[: out.rfind(b"\r\n")] if b"\r\n" in out else b""
    for line in complete.split(b"\r\n"):
        assert REPLY.match(line), line
        assert len(line) <= 512
    assert server.proc.poll() is None, server.output()[-3000:]
    log = server.output()
    assert "Traceback" not in log and "unhandled error" not in log, log[-5000:]


def test_server_healthy_after_fuzzing(server: ServerProcess) -> None:
    # Runs after the fuzzer in this module: both ports still work end to end.
    with smtplib.SMTP(server.ip, 1587, timeout=TIMEOUT, source_address=("127.0.0.77", 0)) as s:
        s.login("mox@localhost", "moxmoxmox")
        assert s.sendmail("mox@localhost", ["someone@example.org"], b"From: mox@localhost\r\n\r\nok\r\n") == {}
    # The delivery port checks the sender's domain in DNS; the suite's responder
    # knows no names, and localserve exempts its own domain.
    with smtplib.SMTP(server.ip, 1025, timeout=TIMEOUT, source_address=("127.0.0.78", 0)) as s:
        assert s.sendmail("other@localhost", ["mox@localhost"], b"From: other@localhost\r\n\r\nok\r\n") == {}
    out = server.output()
    assert "Traceback" not in out and "unhandled error" not in out, out[-5000:]
