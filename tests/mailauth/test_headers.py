"""The headers authentication writes, byte for byte in mox's layout."""

from __future__ import annotations

from datetime import UTC, datetime

from core.mailauth.authres import AuthMethod, AuthProp, AuthResults, claims_authserv_id
from core.mailauth.delivery import received_header
from core.mailauth.spf import Received


def test_authentication_results_layout() -> None:
    ar = AuthResults("møx.example", [AuthMethod("dkim", "pass", props=[
        AuthProp("header", "d", "møx.example", True, "xn--mx-lka.example")])], comment="xn--mx-lka.example")
    assert ar.header().decode() == (
        "Authentication-Results: (xn--mx-lka.example) møx.example;\r\n"
        "\tdkim=pass header.d=møx.example (xn--mx-lka.example)\r\n")
    # Comments only with a reason or properties; values needing it are quoted.
    ar = AuthResults("mx.example", [
        AuthMethod("iprev", "fail", "without dnssec", props=[AuthProp("policy", "iprev", "192.0.2.1")]),
        AuthMethod("dkim", "none", "ignored", reason="no dkim signatures"),
        AuthMethod("spf", "none", "without dnssec"),
        AuthMethod("auth", "pass", props=[AuthProp("smtp", "mailfrom", "a@b.example", True),
                                          AuthProp("smtp", "x", "a@b")]),
    ])
    assert ar.header().decode() == (
        "Authentication-Results: mx.example;\r\n"
        "\tiprev=fail (without dnssec) policy.iprev=192.0.2.1;\r\n"
        "\tdkim=none (ignored) reason=\"no dkim signatures\";\r\n"
        "\tspf=none;\r\n"
        "\tauth=pass smtp.mailfrom=a@b.example smtp.x=\"a@b\"\r\n")


def test_received_spf_layout() -> None:
    r = Received("pass", "c", "0.0.0.0", "x@x", "y", "z", identity="mailfrom",
                 mechanism="+ip4:0.0.0.0/0", problem='a b"\\')
    assert r.header().decode() == (
        'Received-SPF: pass (c) client-ip=0.0.0.0; envelope-from="x@x"; helo=y;\r\n'
        '\tproblem="a b\\"\\\\"; mechanism="+ip4:0.0.0.0/0"; receiver=z;\r\n\tidentity=mailfrom\r\n')
    r = Received("pass", "", "0.0.0.0", "x@x", "2001:db8::1", "z", identity="mailfrom")
    assert r.header().decode() == (
        'Received-SPF: pass client-ip=0.0.0.0; envelope-from="x@x";\r\n'
        '\thelo="2001:db8::1"; receiver=z; identity=mailfrom\r\n')


def test_received_layout() -> None:
    when = datetime(2026, 12, 4, 9, 5, 3, tzinfo=UTC)
    h = received_header(helo="mail.example.org", remote_ip="192.0.2.1", iprev_name="host.example.org.",
                        hostname="mx.example.net", local_ip="198.51.100.2", ehlo=True, smtputf8=False,
                        tls=True, tls_version="TLSv1.2", tls_cipher="ECDHE-RSA-AES128-GCM-SHA256",
                        conn_id="abc", rcpt_to="u@example.net", now=when)
    assert h.decode() == (
        "Received: from mail.example.org (host.example.org [192.0.2.1]) by\r\n"
        "\tmx.example.net ([198.51.100.2]) via tcp with ESMTPS id abc (TLS1.2\r\n"
        "\tTLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256) for <u@example.net>;\r\n"
        "\t4 Dec 2026 09:05:03 +0000\r\n")
    h = received_header(helo="", remote_ip="2001:db8::1", iprev_name="", hostname="mx", local_ip="::1",
                        ehlo=False, smtputf8=False, tls=False, tls_version="", tls_cipher="", conn_id="i",
                        rcpt_to="", now=when)
    # Without a single recipient mox leaves out the "for" clause (and its ";").
    assert h.decode() == ("Received: from [IPv6:2001:db8::1] ([IPv6:2001:db8::1]) by mx ([IPv6:::1])\r\n"
                          "\tvia tcp with SMTP id i 4 Dec 2026 09:05:03 +0000\r\n")


def test_claims_authserv_id() -> None:
    assert claims_authserv_id(b" mx.example; spf=pass", "MX.example")
    assert claims_authserv_id(b" (forged (nested)) mx.example.;\r\n dkim=pass", "mx.example")
    assert claims_authserv_id(b" mx.example 1; none", "mx.example")
    assert not claims_authserv_id(b" other.example; spf=pass smtp.mailfrom=mx.example", "mx.example")
    assert not claims_authserv_id(b" (unclosed mx.example; x", "mx.example")
