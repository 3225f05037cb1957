"""DSN composing (mox's queue format) and parsing (webhook DSN matching)."""

import base64
import email
import email.policy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.message.dsn import (
    DSN,
    RETRY_WINDOW,
    DSNParseError,
    DSNRecipient,
    compose_dsn,
    dsn_prefix,
    dsn_smtp_codes,
    is_dsn_strict,
)
from core.message.dsn import (
    parse_dsn as _parse_dsn,
)
from core.message.headers import is_dsn
from core.message.parsed import is_automated, message_view
from core.message.structure import parse_structure
from tests.support.paths import DSN_SAMPLES as SAMPLES
from tests.support.paths import MESSAGES


def parse_dsn(data: bytes, strict: bool = False) -> DSN:
    """parse_dsn for inputs that are DSNs (asserts a result, keeps mypy precise)."""
    d = _parse_dsn(data, strict=strict)
    assert d is not None
    return d



QUEUED = datetime(2026, 11, 23, 23, 58, 0, tzinfo=UTC)
LAST = datetime(2026, 11, 23, 23, 59, 15, tzinfo=UTC)
ORIG = (
    b"Received: from localhost by localhost id x for <user554@example.org>; 23 Nov 2026 23:58:00 +0000\r\n"
    b"From: <mox@localhost>\r\nTo: <user554@example.org>\r\nSubject: perm\r\n"
    b"Message-Id: <orig1@localhost>\r\n\r\nbody that must not be included\r\n"
)
ERR = (
    "delivering message to 127.0.0.4:1025: remote smtp server sent unexpected response status code: "
    "got 554, expected 2xx, permanent: 554 5.0.0 failure"
)


def _failed(**kw):
    r = DSNRecipient(
        address="user554@example.org",
        action="failed",
        status="5.0.0",
        status_comment=ERR,
        remote_mta="localhost",
        diagnostic_code="554 5.0.0 failure with code 554 due to special localpart (rSX5i97szKPNj3oYJvz1hA)",
        last_attempt=LAST,
    )
    args: dict[str, Any] = dict(
        hostname="localhost",
        to_addr="mox+fromid@localhost",
        kind="failed",
        recipients=[r],
        arrival=QUEUED,
        original_headers=ORIG,
        original_message_id="<orig1@localhost>",
        smtp_lines=["554 5.0.0 failure with code 554 due to special localpart (rSX5i97szKPNj3oYJvz1hA)"],
        date=LAST,
        message_id="abcdefghijklmnopqrstuv@localhost",
    )
    args.update(kw)
    return compose_dsn(**args)


def test_failed_dsn_layout():
    data = _failed()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode().split("\r\n")
    assert lines[:7] == [
        "From: <postmaster@localhost>",
        "To: <mox+fromid@localhost>",
        "Subject: mail delivery failed",
        "Message-Id: <abcdefghijklmnopqrstuv@localhost>",
        "References: <orig1@localhost>",
        "Date: 23 Nov 2026 23:59:15 +0000",
        "MIME-Version: 1.0",
    ]
    assert lines[7].startswith('Content-Type: multipart/report; report-type="delivery-status"; boundary="')
    boundary = lines[7].split('boundary="')[1].rstrip('"')
    assert len(boundary) == 60
    text = body.decode()
    assert text.startswith(f"--{boundary}\r\nContent-Transfer-Encoding: 7BIT\r\nContent-Type: text/plain\r\n\r\n")
    assert "\r\nDelivery has failed permanently for your email to:\r\n\r\n\tuser554@example.org\r\n" in text
    assert "No further deliveries will be attempted." in text
    assert "\r\nFull SMTP response:\r\n\r\n\t554 5.0.0 failure with code 554" in text
    status = (
        "Content-Transfer-Encoding: 7BIT\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; localhost\r\n"
        "Arrival-Date: 23 Nov 2026 23:58:00 +0000\r\n"
        "\r\n"
        "Final-Recipient: rfc822;user554@example.org\r\n"
        "Action: failed\r\n"
        f"Status: 5.0.0 ({ERR})\r\n"
        "Remote-MTA: dns;localhost\r\n"
        "Diagnostic-Code: smtp; 554 5.0.0 failure with code 554 due to special localpart (rSX5i97szKPNj3oYJvz1hA)\r\n"
        "Last-Attempt-Date: 23 Nov 2026 23:59:15 +0000\r\n"
        f"\r\n--{boundary}\r\n"
        "Content-Transfer-Encoding: 7BIT\r\nContent-Type: text/rfc822-headers\r\n\r\n"
    )
    assert status in text
    assert "Will-Retry-Until" not in text
    assert "body that must not be included" not in text
    assert "Subject: perm\r\n" in text
    assert text.endswith(f"\r\n--{boundary}--\r\n")
    # Structure and flags as the rest of the system sees it.
    s = parse_structure(data)
    assert [p.ContentType for p in s.Parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    assert is_dsn(data) and is_dsn_strict(data) and is_automated(data, "")
    assert message_view(data)["Subject"] == "mail delivery failed"
    # stdlib agrees
    m = email.message_from_bytes(data, policy=email.policy.default)
    assert m.get_content_type() == "multipart/report" and m.get_param("report-type") == "delivery-status"


def test_round_trip_failed():
    dsn = parse_dsn(_failed(), strict=True)
    assert dsn is not None and not dsn.utf8
    assert dsn.reporting_mta == "localhost"
    assert dsn.arrival_date == QUEUED
    assert dsn.message_id == "<abcdefghijklmnopqrstuv@localhost>"
    (r,) = dsn.recipients
    assert r.address == "user554@example.org"
    assert r.action == "failed" and r.status == "5.0.0" and r.status_comment == ERR
    assert r.remote_mta == "localhost"
    assert r.diagnostic_code.startswith("554 5.0.0 failure with code 554")
    assert r.last_attempt == LAST
    assert dsn_smtp_codes(r) == (554, "0.0")
    assert b"Subject: perm" in dsn.original
    assert "Delivery has failed permanently" in dsn.text_body


def test_delayed_dsn_will_retry_until_and_round_trip():
    r = DSNRecipient(address="x@example.org", action="delayed", status="4.0.0", status_comment="timeout",
                     last_attempt=LAST)
    data = compose_dsn(hostname="localhost", to_addr="mox@localhost", kind="delayed", recipients=[r],
                       arrival=QUEUED, original_headers=ORIG, error="timeout")
    assert b"Subject: mail delivery delayed\r\n" in data
    assert b"Next attempts to deliver: in 4 hours, 8 hours and 16 hours." in data
    assert b"Action: delayed\r\n" in data
    assert b"Will-Retry-Until: 25 Nov 2026 03:59:15 +0000\r\n" in data
    assert b"Remote-MTA" not in data and b"Diagnostic-Code" not in data
    dsn = parse_dsn(data, strict=True)
    (pr,) = dsn.recipients
    assert pr.will_retry_until == LAST + RETRY_WINDOW
    assert dsn_smtp_codes(pr) == (400, "0.0")


def test_smtputf8_dsn_is_global():
    r = DSNRecipient(address="üser@bücher.example", action="failed", status="5.1.1", last_attempt=LAST,
                     diagnostic_code="550 5.1.1 no such user")
    orig = "From: <mö@localhost>\r\nSubject: ☺\r\n\r\nx".encode()
    data = compose_dsn(hostname="localhost", to_addr="mö@localhost", kind="failed", recipients=[r],
                       arrival=QUEUED, original_headers=orig, smtputf8=True)
    text = data.decode()
    assert "Content-Transfer-Encoding: 8BIT\r\nContent-Type: text/plain; charset=utf-8\r\n" in text
    assert "Content-Type: message/global-delivery-status\r\n" in text
    assert "Final-Recipient: utf-8;üser@bücher.example\r\n" in text
    assert "Content-Type: message/global-headers\r\n" in text
    dsn = parse_dsn(data, strict=True)
    assert dsn.utf8 and dsn.recipients[0].address == "üser@bücher.example"
    # Original SMTPUTF8 but the DSN itself ASCII: xtext address, base64 headers.
    data2 = compose_dsn(hostname="localhost", to_addr="m@localhost", kind="failed", recipients=[r],
                        arrival=QUEUED, original_headers=orig, smtputf8=True, dsn_utf8=False)
    t2 = data2.decode("ascii")
    assert "Final-Recipient: rfc822;\\x{fc}ser@xn--bcher-kva.example\r\n" in t2
    assert "Content-Transfer-Encoding: BASE64\r\nContent-Type: text/rfc822-headers; charset=utf-8\r\n" in t2
    d2 = parse_dsn(data2, strict=True)
    assert d2.recipients[0].address == "üser@xn--bcher-kva.example"
    assert d2.original == base64.b64decode(base64.b64encode(orig.split(b"\r\n\r\n")[0] + b"\r\n\r\n"))


def test_plus_in_recipient_round_trips():
    r = DSNRecipient(address="mox+abc@localhost", action="failed", status="5.0.0", last_attempt=LAST)
    data = compose_dsn(hostname="localhost", to_addr="a@localhost", kind="failed", recipients=[r], arrival=QUEUED)
    assert b"rfc822;mox\\x{2b}abc@localhost" in data
    assert b"text/rfc822-headers" not in data  # no original given: two parts only
    assert parse_dsn(data).recipients[0].address == "mox+abc@localhost"


def test_compose_requires_recipients():
    with pytest.raises(ValueError):
        compose_dsn(hostname="h", to_addr="a@h", kind="failed", recipients=[], arrival=QUEUED)


def test_dsn_prefix():
    assert dsn_prefix("postmaster@localhost", "mox+x@localhost") == (
        b"Return-Path: <postmaster@localhost>\r\nDelivered-To: mox+x@localhost\r\n"
    )


@pytest.mark.parametrize(
    "name,action,status,codes,diag",
    [
        ("failed.eml", "failed", "5.1.1", (550, "1.1"), "550 5.1.1 mailbox unavailable"),
        ("delayed.eml", "delayed", "4.4.1", (400, "4.1"), ""),
        ("relayed.eml", "relayed", "2.0.0", (0, ""), ""),
        ("failed-unknown-fromid.eml", "failed", "5.0.0", (500, "0.0"), ""),
        ("unknown-action.eml", "bounced-ish", "5.0.0", (500, "0.0"), ""),
    ],
)
def test_samples(name, action, status, codes, diag):
    data = (SAMPLES / name).read_bytes()
    for strict in (False, True):
        dsn = parse_dsn(data, strict=strict)
        assert dsn is not None
        assert dsn.reporting_mta == "mx.remote.example"
        assert len(dsn.recipients) == 1
        r = dsn.recipients[0]
        assert (r.action, r.status, r.diagnostic_code) == (action, status, diag)
        assert dsn_smtp_codes(r) == codes
    if name == "failed.eml":
        assert r.address == "carol@localhost"
        assert dsn.original == b"Subject: quarterly report\r\n"  # text part: LF -> CRLF


def test_not_a_dsn():
    assert _parse_dsn(b"Auto-Submitted: auto-replied\r\nSubject: re\r\n\r\nthanks\r\n") is None
    report_wrong_second = (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: text/plain\r\n\r\ny\r\n--b--\r\n"
    )
    assert is_dsn(report_wrong_second) and not is_dsn_strict(report_wrong_second)
    assert _parse_dsn(report_wrong_second) is None


def _status_dsn(status_body: bytes) -> bytes:
    return (
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        + status_body
        + b"\r\n--b--\r\n"
    )


def test_real_world_tolerance_and_strict_errors():
    messy = _status_dsn(
        b"Reporting-MTA: dns;mx.example\r\n\r\n\r\n"
        b"Final-Recipient: RFC822; <a@example.org>\r\nAction: Failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: X-Postfix; host said:\r\n    550 unknown user\r\n\r\n"
        b"Final-Recipient: rfc822;b@example.org\r\nAction: delayed\r\nStatus: 4.2.2 (mailbox full)\r\n"
        b"Remote-MTA: dns; mx.b.example (192.0.2.1)\r\n"
        b"Will-Retry-Until: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
    )
    dsn = parse_dsn(messy)
    a, b = dsn.recipients
    assert a.address == "a@example.org" and a.action == "failed"
    assert a.diagnostic_type == "x-postfix" and a.diagnostic_code == "host said: 550 unknown user"
    assert dsn_smtp_codes(a) == (500, "1.1")  # non-smtp diagnostic ignored, status used
    assert b.status == "4.2.2" and b.status_comment == "mailbox full"
    assert b.remote_mta == "mx.b.example" and b.remote_mta_ip == "192.0.2.1"
    assert b.will_retry_until == datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    with pytest.raises(DSNParseError):
        parse_dsn(messy, strict=True)
    # Only a recipient block, like many old MTAs.
    only_rcpt = _status_dsn(b"Original-Recipient: <user@domain>\r\nAction: failed\r\nDiagnostic-Code: smtp; 550 5.1.1 <user@domain>... User unknown\r\n")
    d = parse_dsn(only_rcpt)
    assert d.reporting_mta == "" and d.recipients[0].address == "user@domain"
    assert dsn_smtp_codes(d.recipients[0]) == (550, "1.1")
    with pytest.raises(DSNParseError, match="Reporting-Mta"):
        parse_dsn(only_rcpt, strict=True)
    dup = _status_dsn(b"Reporting-MTA: dns; x\r\n\r\nFinal-Recipient: rfc822;a@b\r\nAction: failed\r\nAction: delayed\r\nStatus: 5.0.0\r\n")
    assert parse_dsn(dup).recipients[0].action == "failed"
    with pytest.raises(DSNParseError, match="multiple values"):
        parse_dsn(dup, strict=True)
    with pytest.raises(DSNParseError):
        parse_dsn(_status_dsn(b""))


def test_testdata_message_with_embedded_report():
    data = (MESSAGES / "lf-report-truncated.eml").read_bytes()
    d = parse_dsn(data)
    assert d.recipients[0].action == "failed"
    assert d.recipients[0].address == "bob@remote.example"
    assert d.recipients[0].remote_mta == "127.0.0.1"
    assert d.original.startswith(b"Date: Mon, 13 Mar 2006")


def test_smtp_code_rules():
    assert dsn_smtp_codes(DSNRecipient("a@b", diagnostic_code="550 5.1.1 no", status="5.1.1")) == (550, "1.1")
    assert dsn_smtp_codes(DSNRecipient("a@b", diagnostic_code="550 no such user", status="")) == (550, "")
    assert dsn_smtp_codes(DSNRecipient("a@b", diagnostic_code="550", status="5.2.2")) == (500, "2.2")
    assert dsn_smtp_codes(DSNRecipient("a@b", diagnostic_code="5500 5.1.1 x", status="")) == (0, "")
    assert dsn_smtp_codes(DSNRecipient("a@b", status="2.0.0")) == (0, "")
    assert dsn_smtp_codes(DSNRecipient("a@b", status="4.4.1")) == (400, "4.1")


def test_diagnostic_prefix_not_doubled():
    r = DSNRecipient(address="a@example.org", status="5.0.0", diagnostic_code="smtp; 550 no", last_attempt=LAST)
    data = compose_dsn(hostname="localhost", to_addr="m@localhost", kind="failed", recipients=[r], arrival=QUEUED,
                       date=LAST - timedelta(seconds=1))
    assert b"Diagnostic-Code: smtp; 550 no\r\n" in data
