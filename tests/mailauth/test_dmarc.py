"""DMARC: record parsing, policy discovery, the alignment matrix, p=reject, temperror."""

from __future__ import annotations

import pytest

from core.mailauth import dkimverify, dmarc, spf
from tests.mailauth.test_dkim_verify import DictLookup


def dkim_pass(domain: str, status: str = "pass") -> dkimverify.Result:
    sig = dkimverify.Signature(
        domain=domain, selector="s", algorithm_sign="rsa", algorithm_hash="sha256", signature=b"x",
        body_hash=b"", signed_headers=["from"], header_relaxed=True, body_relaxed=True,
    )
    return dkimverify.Result(status, sig)


# (from domain, authenticated domain, relaxed aligned?, strict aligned?)
ALIGN = [
    ("example.org", "example.org", True, True),
    ("mail.example.org", "example.org", True, False),
    ("example.org", "mail.example.org", True, False),
    ("a.example.org", "b.example.org", True, False),
    ("example.org", "example.net", False, False),
    ("example.co.uk", "other.co.uk", False, False),  # public suffix co.uk: different org domains
]


@pytest.mark.parametrize("mode", ["r", "s"])
@pytest.mark.parametrize("via", ["spf", "dkim"])
@pytest.mark.parametrize(("from_domain", "auth_domain", "relaxed", "strict"), ALIGN)
async def test_alignment_matrix(mode: str, via: str, from_domain: str, auth_domain: str,
                                relaxed: bool, strict: bool) -> None:
    org = from_domain.split(".", 1)[1] if from_domain.count(".") > 1 and not from_domain.endswith("co.uk") else from_domain
    record = f"v=DMARC1; p=reject; adkim={mode}; aspf={mode}"
    lookup = DictLookup({f"_dmarc.{org}": [record]})
    dkim_results = [dkim_pass(auth_domain)] if via == "dkim" else []
    spf_status = spf.PASS if via == "spf" else spf.FAIL
    spf_identity = auth_domain if via == "spf" else None
    res = await dmarc.verify(lookup, from_domain, dkim_results, spf_status, spf_identity)
    aligned = strict if mode == "s" else relaxed
    assert res.status == ("pass" if aligned else "fail"), res
    assert res.reject == (not aligned)
    assert getattr(res, f"aligned_{via}_pass") == aligned
    # mox's MsgFromValidated alignment ignores the record's mode.
    expected = "strict" if strict else "relaxed" if relaxed else "none"
    assert dmarc.alignment(from_domain, dkim_results, spf_status, spf_identity) == expected


async def test_policy_at_organizational_domain_and_subdomain_policy() -> None:
    lookup = DictLookup({"_dmarc.example.org": ["v=DMARC1; p=reject; sp=none"]})
    sub = await dmarc.verify(lookup, "news.example.org", [], spf.FAIL, "news.example.org")
    assert (sub.status, sub.domain, sub.reject) == ("fail", "example.org", False)
    top = await dmarc.verify(lookup, "example.org", [], spf.FAIL, "example.org")
    assert (top.status, top.reject) == ("fail", True)
    # A record at the subdomain itself wins.
    lookup.txt_records["_dmarc.news.example.org"] = ["v=DMARC1; p=quarantine"]
    own = await dmarc.verify(lookup, "news.example.org", [], spf.FAIL, "news.example.org")
    assert (own.domain, own.reject) == ("news.example.org", True)


async def test_reject_with_failing_spf_and_dkim() -> None:
    lookup = DictLookup({"_dmarc.example.org": ["v=DMARC1; p=reject"]})
    res = await dmarc.verify(lookup, "example.org", [dkim_pass("example.org", "fail")], spf.FAIL, "example.org")
    assert (res.status, res.reject, res.use) == ("fail", True, True)
    # DKIM from another organization does not help.
    res = await dmarc.verify(lookup, "example.org", [dkim_pass("evil.example")], spf.SOFTFAIL, "example.org")
    assert (res.status, res.reject) == ("fail", True)


async def test_pct_samples_the_policy() -> None:
    lookup = DictLookup({"_dmarc.example.org": ["v=DMARC1; p=reject; pct=20"]})
    applied = await dmarc.verify(lookup, "example.org", [], spf.FAIL, "example.org", sample=0.1)
    skipped = await dmarc.verify(lookup, "example.org", [], spf.FAIL, "example.org", sample=0.5)
    assert (applied.use, applied.reject) == (True, True)
    assert (skipped.use, skipped.reject) == (False, True)


async def test_temperror_never_rejects() -> None:
    lookup = DictLookup({"_dmarc.example.org": ["v=DMARC1; p=reject"]})
    res = await dmarc.verify(lookup, "example.org", [], spf.TEMPERROR, "example.org")
    assert (res.status, res.reject) == ("temperror", False)
    res = await dmarc.verify(lookup, "example.org", [dkim_pass("example.org", "temperror")], spf.FAIL, None)
    assert (res.status, res.reject) == ("temperror", False)
    failing = DictLookup({}, failing=("_dmarc.example.org",))
    res = await dmarc.verify(failing, "example.org", [], spf.FAIL, None)
    assert (res.status, res.reject) == ("temperror", False)


async def test_no_record_and_bad_records() -> None:
    assert (await dmarc.verify(DictLookup({}), "example.org", [], spf.PASS, "example.org")).status == "none"
    bad = DictLookup({"_dmarc.example.org": ["v=DMARC1; p=sometimes"]})
    assert (await dmarc.verify(bad, "example.org", [], spf.PASS, "example.org")).status == "permerror"
    other = DictLookup({"_dmarc.example.org": ["not dmarc", "v=DMARC1; adkim=s; p=none"]})
    with pytest.raises(dmarc._Syntax):
        dmarc.parse_record("v=DMARC1; adkim=s; p=none")
    assert (await dmarc.verify(other, "example.org", [], spf.FAIL, "example.org")).status == "permerror"
    rec = dmarc.parse_record("v=DMARC1; p=quarantine; sp=reject; adkim=s; aspf=r; pct=50; rua=mailto:x@example.org")
    assert rec == dmarc.Record("quarantine", "reject", "s", "r", 50)
    assert dmarc.parse_record("v=spf1 -all") is None
