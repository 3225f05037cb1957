"""Command parsing, replies and the DATA decoder, without sockets."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.smtp.parser import (
    DataDecoder,
    MailContext,
    Path,
    parse_auth,
    parse_hello,
    parse_mail,
    parse_no_args,
    parse_rcpt,
    split_command,
)
from core.smtp.reply import Reply, SMTPError, new_conn_id

SMTP = MailContext(submission=False, tls=False, requiretls_enabled=True, max_message_size=1000)
SUB = MailContext(submission=True, tls=True, requiretls_enabled=True, max_message_size=1000)


def err(fn, *a, **kw) -> Reply:  # type: ignore[no-untyped-def]
    with pytest.raises(SMTPError) as ei:
        fn(*a, **kw)
    return ei.value.reply


def test_reply_rendering() -> None:
    cid = "y4MKnRsP5JuwmfqQqEHIYA"
    assert Reply(250, "2.1.0", "looking good").render(cid) == b"250 2.1.0 looking good\r\n"
    assert (
        Reply(550, "5.7.1", "must match authenticated user").render(cid)
        == b"550 5.7.1 must match authenticated user (y4MKnRsP5JuwmfqQqEHIYA)\r\n"
    )
    assert (
        Reply(451, "4.0.0", "a\nb").render(cid)
        == b"451-4.0.0 a\r\n451 4.0.0 b (" + cid.encode() + b")\r\n"
    )
    assert (
        Reply(252, "2.7.0", "x", with_id=True).render(cid).endswith(b"(" + cid.encode() + b")\r\n")
    )
    assert Reply(600, "6.0.0", "x").render("") == b"600 6.0.0 x\r\n"
    long = Reply(250, "2.0.0", "word " * 200).lines()
    assert len(long) > 1 and all(len(line) <= 510 for line in long)
    assert all(line.startswith("250-") for line in long[:-1]) and long[-1].startswith("250 ")
    with pytest.raises(ValueError):
        Reply(99, "", "x")
    with pytest.raises(ValueError):
        Reply(250, "2.x.0", "x")
    ids = {new_conn_id() for _ in range(50)}
    assert len(ids) == 50 and all(len(i) == 22 and "=" not in i for i in ids)


def test_split_command() -> None:
    assert split_command("MAIL FROM:<a@b>") == ("mail", " FROM:<a@b>")
    assert split_command("QUIT") == ("quit", "")
    assert split_command("ehlo  x") == ("ehlo", "  x")


def test_parse_mail_addresses() -> None:
    p, params = parse_mail(" FROM:<mjl@Mox.Example>", SMTP)
    assert p == Path("mjl", "mox.example") and str(p) == "mjl@mox.example"
    assert params.size is None and not params.smtputf8
    p, _ = parse_mail(" FROM:<>", SMTP)
    assert p.is_null and str(p) == ""
    p, _ = parse_mail(' FROM:<"a b\\"c"@x.example>', SMTP)
    assert p.localpart == 'a b"c' and str(p) == '"a b\\"c"@x.example'
    p, _ = parse_mail(" FROM:<@relay.example,@r2.example:u@x.example>", SMTP)
    assert p == Path("u", "x.example")
    p, _ = parse_mail(" FROM:<u@[IPv6:::1]>", SMTP)
    assert p.ip == ipaddress.ip_address("::1") and str(p) == "u@[IPv6:::1]"
    p, _ = parse_mail(" FROM: <u@x.example>", SMTP)  # Outlook's space, lenient.
    assert p.localpart == "u"
    assert (
        err(
            parse_mail, " FROM: <u@x.example>", MailContext(False, False, True, 10, pedantic=True)
        ).code
        == 501
    )
    p, params = parse_mail(" FROM:<ñ@bücher.example> SMTPUTF8 BODY=8bitmime", SMTP)
    assert p == Path("ñ", "bücher.example") and params.smtputf8 and params.body == "8BITMIME"
    assert err(parse_mail, " FROM:<ñ@x.example>", SMTP) == Reply(
        550, "5.6.7", "non-ascii address not permitted without smtputf8"
    )
    for bad in [
        "<u@[1.2.3]>",
        "<u@[IPv6:1.2.3.4]>",
        "<u@[::1]>",
        "<u@[fe80::1%eth0]>",
        "<u@-x.example>",
        "<u..v@x.example>",
        "<u@x..example>",
        "<u@x.example",
        "u@x.example",
        "<" + "a" * 129 + "@x.example>",
    ]:
        r = err(parse_mail, " FROM:" + bad, SMTP)
        assert r.code == 501 and r.enhanced == "5.5.2", bad
    assert "(remaining:" in err(parse_mail, " FROM:<u@@x>", SMTP).text


def test_parse_mail_params() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    assert err(parse_mail, " FROM:<a@b.example> SIZE=1001", SMTP) == Reply(
        552, "5.2.3", "message too large"
    )
    assert parse_mail(" FROM:<a@b.example> SIZE=1000 AUTH=a+2Bb@c", SMTP)[1].size == 1000
    assert parse_mail(" FROM:<a@b.example> AUTH=<>", SMTP)[1].size is None
    assert err(parse_mail, " FROM:<a@b.example> AUTH=a+zz", SMTP).code == 501
    assert err(parse_mail, " FROM:<a@b.example> X-FOO", SMTP) == Reply(
        555, "5.3.3", 'unrecognized parameter "X-FOO"'
    )
    assert err(parse_mail, " FROM:<a@b.example> REQUIRETLS", SMTP).code == 530
    off = MailContext(True, True, False, 10)
    assert err(parse_mail, " FROM:<a@b.example> REQUIRETLS", off) == Reply(
        555, "5.3.3", "REQUIRETLS not allowed for this connection"
    )
    assert parse_mail(" FROM:<a@b.example> REQUIRETLS", SUB)[1].requiretls
    _, prm = parse_mail(" FROM:<a@b.example> HOLDFOR=5184000", SUB, now)
    assert (
        prm.future_release == now + timedelta(seconds=5184000)
        and prm.future_release_request == "for;5184000"
    )
    _, prm = parse_mail(" FROM:<a@b.example> HOLDUNTIL=2025-01-02T03:04:05.5+00:00", SUB, now)
    assert prm.future_release == datetime(2025, 1, 2, 3, 4, 5, 500000, tzinfo=UTC)
    assert prm.future_release_request == "until;2025-01-02T03:04:05.5+00:00"
    assert (
        err(parse_mail, " FROM:<a@b.example> HOLDUNTIL=2025-01-02T03:04:05+01:00", SUB, now).code
        == 501
    )
    assert (
        err(parse_mail, " FROM:<a@b.example> HOLDFOR=0000000001", SUB, now).code == 501
    )  # > 9 digits
    assert err(parse_mail, " FROM:<a@b.example> HOLDFOR=10", SMTP, now).code == 555


def test_parse_rcpt_and_hello() -> None:
    assert parse_rcpt(" TO:<PostMaster>", smtputf8=False, submission=False) == Path(
        "postmaster", ""
    )
    assert parse_rcpt(" TO: <a@b.example>", smtputf8=False, submission=False) == Path(
        "a", "b.example"
    )
    # A space after the path starts a parameter (as in mox), so it is an error.
    assert err(parse_rcpt, " TO:<a@b.example> ", smtputf8=False, submission=False).code == 501
    # Commands without arguments: trailing blanks are fine except on submission.
    parse_no_args("  \t", strict_end=False)
    assert err(parse_no_args, " ", strict_end=True).code == 501
    assert err(parse_no_args, " x", strict_end=False).code == 501
    assert err(parse_rcpt, " TO:<ü@b.example>", smtputf8=False, submission=False).code == 553
    assert err(parse_rcpt, " TO:<>", smtputf8=False, submission=False).code == 501
    assert parse_hello(" mail.Example.org", True, strict_end=False) == "mail.example.org"
    assert parse_hello(" [192.0.2.1] extra words", True, strict_end=False) == "[192.0.2.1]"
    assert parse_hello(" [IPv6:2001:db8::1]", True, strict_end=False) == "[IPv6:2001:db8::1]"
    assert err(parse_hello, "", True, strict_end=False).code == 501
    assert (
        err(parse_hello, " [192.0.2.1]", False, strict_end=False).code == 501
    )  # HELO: domain only
    assert parse_auth(" plain") == ("PLAIN", None)
    assert parse_auth(" PLAIN  AGFiAGM=") == ("PLAIN", "AGFiAGM=")


def decode(data: bytes, chunks: list[int] | None = None) -> tuple[bytes, DataDecoder, int]:
    d = DataDecoder()
    out = []
    used_total = 0
    pos = 0
    for n in chunks or [len(data)]:
        piece = data[pos : pos + n]
        pos += n
        o, used = d.feed(piece)
        out.append(o)
        used_total += used
        if d.done:
            break
    return b"".join(out), d, used_total


def test_data_decoder_rules() -> None:
    out, d, used = decode(b"a\r\n..b\r\n.\r\nQUIT\r\n")
    assert out == b"a\r\n.b\r\n" and d.done and used == len(b"a\r\n..b\r\n.\r\n") and not d.bad_crlf
    out, d, _ = decode(b".\r\n")
    assert out == b"" and d.done
    out, d, _ = decode(b"x\n.\ny\r\n.\r\n")
    assert d.done and d.bad_crlf
    out, d, _ = decode(b"x\r\n.\ny\r\n.\r\n")
    assert d.done and d.bad_crlf
    out, d, _ = decode(b"x\n.\r\ny\r\n.\r\n")  # "[^\r]\n.\r\n" is not the end either.
    assert d.done and d.bad_crlf and b"y" in out
    out, d, _ = decode(b"a\rb\r\n.\r\n")
    assert d.bad_crlf
    out, d, _ = decode(b"h: v\r\n\r\nb\xff\n.\r\n")
    assert not d.done  # ".\r\n" after a bare LF is not the end marker.
    out, d, _ = decode(b"h: v\r\n\r\nb\xff\r\n.\r\n")
    assert d.have_body and d.has_8bit and out == b"h: v\r\n\r\nb\xff\r\n"
    out, d, _ = decode(b"h: v\r\nno body\r\n.\r\n")
    assert not d.have_body
    # Long lines without newline are passed through in pieces, still unstuffed once.
    big = b"." + b"x" * 200_000 + b"\r\n.\r\n"
    out, d, _ = decode(big, [70_000, 70_000, 70_000, 10])
    assert d.done and out == b"x" * 200_000 + b"\r\n" and d.size == 200_002


def stuff(msg: bytes) -> bytes:
    lines = msg.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines) + b".\r\n"


line_st = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@settings(max_examples=300, deadline=None)
@given(st.lists(line_st, max_size=30), st.lists(st.integers(1, 50), min_size=1, max_size=40))
def test_data_decoder_round_trip(lines: list[bytes], chunks: list[int]) -> None:
    msg = b"".join(line + b"\r\n" for line in lines)
    wire = stuff(msg) + b"NEXT"
    sizes = chunks + [len(wire)]
    out, d, used = decode(wire, sizes)
    assert d.done and not d.bad_crlf
    assert out == msg
    assert used == len(wire) - len(b"NEXT")
    assert d.has_8bit == (not msg.isascii())


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300), st.lists(st.integers(1, 64), min_size=1, max_size=20))
def test_data_decoder_never_fails(data: bytes, chunks: list[int]) -> None:
    out, d, used = decode(data, chunks + [len(data)])
    assert 0 <= used <= len(data)
    if d.done:
        assert data[:used].endswith(b"\r\n.\r\n") or data[:used] == b".\r\n"
    stripped = out.replace(b"\r\n", b"")
    assert b"\n" not in stripped  # Bare LFs are written as CRLF.
    if b"\r" in stripped:
        assert d.bad_crlf


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=80), st.booleans())
def test_parsers_only_raise_smtp_errors(s: str, submission: bool) -> None:
    ctx = MailContext(submission, submission, True, 1000)
    for fn in (
        lambda: parse_mail(s, ctx),
        lambda: parse_rcpt(s, smtputf8=submission, submission=submission),
        lambda: parse_hello(s, submission, strict_end=submission),
        lambda: parse_auth(s),
    ):
        try:
            fn()
        except SMTPError as e:
            assert 100 <= e.reply.code <= 599
