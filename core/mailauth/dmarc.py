"""DMARC (RFC 7489): does the From domain's policy accept this message?

:func:`verify` follows mox's ``dmarc.Verify``: the record is looked up at
``_dmarc.<From domain>``, else at the organizational domain's; SPF (for the
checked identity) and DKIM results are aligned with the From domain,
relaxed (same organizational domain) or strict (same domain) per ``aspf=``
and ``adkim=``. ``p=``/``sp=`` decide whether a failure asks for
rejection and ``pct=`` samples which failures the policy applies to. A DNS
failure in the lookup, in SPF or in a DKIM key lookup is ``temperror``,
which never asks for rejection.

:func:`alignment` is mox's ``MsgFromValidated`` computation, which looks at
alignment without needing a DMARC record.
"""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass

from core.mailauth import dkimverify, spf
from core.mailauth.lookup import Lookup, TempError
from core.mailauth.orgdomain import organizational_domain

NONE, PASS, FAIL, TEMPERROR, PERMERROR = "none", "pass", "fail", "temperror", "permerror"
_POLICIES = ("none", "quarantine", "reject")


class _Syntax(Exception):
    pass


@dataclass
class Record:
    policy: str = "none"
    subdomain_policy: str = ""  # "" = same as policy
    adkim: str = "r"
    aspf: str = "r"
    percentage: int = 100


_VERSION = re.compile(r"^\s*v\s*=\s*DMARC1\s*(;|$)")


@functools.lru_cache(maxsize=1024)
def parse_record(txt: str) -> Record | None:
    """A record, or None when ``txt`` is not a DMARC record; ``_Syntax`` when malformed.

    Cached by text (a sender's record is parsed once); the returned record
    is shared and must not be modified.
    """
    m = _VERSION.match(txt)
    if m is None:
        return None
    rec = Record()
    seen: list[str] = []
    for part in txt[m.end():].split(";"):
        if not part.strip():
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not eq or not name:
            raise _Syntax(f"malformed tag {part.strip()!r}")
        if name in seen:
            raise _Syntax(f"duplicate tag {name!r}")
        seen.append(name)
        if name == "p":
            if len(seen) != 1:
                raise _Syntax("p= (policy) must be first tag")
            if value.lower() not in _POLICIES:
                raise _Syntax(f"unknown policy {value!r}")
            rec.policy = value.lower()
        elif name == "sp":
            if value.lower() not in _POLICIES:
                raise _Syntax(f"unknown subdomain policy {value!r}")
            rec.subdomain_policy = value.lower()
        elif name in ("adkim", "aspf"):
            if value.lower() not in ("r", "s"):
                raise _Syntax(f"bad {name}= {value!r}")
            setattr(rec, name, value.lower())
        elif name == "pct":
            if not value.isdigit() or int(value) > 100:
                raise _Syntax(f"bad pct= {value!r}")
            rec.percentage = int(value)
    if "p" not in seen:
        raise _Syntax("missing required p= (policy)")
    return rec


async def _lookup_record(lookup: Lookup, domain: str) -> tuple[str, Record | None, str]:
    """(status, record, error) for ``_dmarc.<domain>``; status is none unless an error."""
    try:
        txts = await lookup.txt(f"_dmarc.{domain}")
    except TempError as exc:
        return TEMPERROR, None, f"dmarc: dns lookup: {exc}"
    record = None
    for txt in txts:
        try:
            r = parse_record(txt)
        except _Syntax as exc:
            return PERMERROR, None, f"dmarc: malformed dmarc txt record: {exc}"
        if r is None:
            continue
        if record is not None:
            return NONE, None, "dmarc: multiple dmarc txt records"
        record = r
    return NONE, record, "" if record is not None else "dmarc: no dmarc dns record"


@dataclass
class Result:
    status: str
    reject: bool = False
    use: bool = False  # the policy applies (pct= sampling)
    domain: str = ""  # where the record was found
    record: Record | None = None
    aligned_spf_pass: bool = False
    aligned_dkim_pass: bool = False
    error: str = ""


async def lookup_policy(lookup: Lookup, from_domain: str) -> tuple[str, str, Record | None, str]:
    """(status, domain, record, error): at the From domain, then its organizational domain."""
    status, record, err = await _lookup_record(lookup, from_domain)
    if status != NONE or record is not None:
        return status, from_domain, record, err
    org = organizational_domain(from_domain)
    if org == from_domain:
        return NONE, from_domain, None, err
    status, record, err = await _lookup_record(lookup, org)
    return status, org, record, err


def evaluate(
    from_domain: str, record_domain: str, record: Record, dkim_results: list[dkimverify.Result],
    spf_status: str, spf_identity: str | None, *, sample: float | None = None,
) -> Result:
    """Apply a found record (no DNS). ``sample`` in [0, 1) replaces the pct= dice roll."""
    from_domain = from_domain.lower()
    roll = random.random() if sample is None else sample
    res = Result(FAIL, domain=record_domain, record=record,
                 use=record.percentage == 100 or roll * 100 < record.percentage)
    if record_domain != from_domain and record.subdomain_policy:
        res.reject = record.subdomain_policy != "none"
    else:
        res.reject = record.policy != "none"
    if spf_status == spf.TEMPERROR:
        res.status, res.reject = TEMPERROR, False
    org = organizational_domain(from_domain)
    if spf_status == spf.PASS and spf_identity and (
        spf_identity == from_domain or (record.aspf == "r" and organizational_domain(spf_identity) == org)
    ):
        res.aligned_spf_pass = True
    for r in dkim_results:
        if r.status == dkimverify.TEMPERROR:
            res.status, res.reject = TEMPERROR, False
            continue
        if r.status == dkimverify.PASS and r.sig is not None and (
            r.sig.domain == from_domain or (record.adkim == "r" and organizational_domain(r.sig.domain) == org)
        ):
            res.aligned_dkim_pass = True
            break
    if res.aligned_spf_pass or res.aligned_dkim_pass:
        res.status, res.reject = PASS, False
    return res


async def verify(
    lookup: Lookup, from_domain: str, dkim_results: list[dkimverify.Result], spf_status: str,
    spf_identity: str | None, *, sample: float | None = None,
) -> Result:
    """DMARC for a message whose From domain is ``from_domain`` (mox's ``dmarc.Verify``)."""
    from_domain = from_domain.lower().rstrip(".")
    status, domain, record, err = await lookup_policy(lookup, from_domain)
    if record is None:
        return Result(status, domain=domain, error=err)
    return evaluate(from_domain, domain, record, dkim_results, spf_status, spf_identity, sample=sample)


def alignment(
    from_domain: str, dkim_results: list[dkimverify.Result], spf_status: str, spf_identity: str | None,
) -> str:
    """mox's alignment(): "strict", "relaxed" or "none" (no DMARC record needed)."""
    from_domain = from_domain.lower()
    org = organizational_domain(from_domain)
    strict = relaxed = False
    for r in dkim_results:
        if r.status != dkimverify.PASS or r.sig is None:
            continue
        if r.sig.domain == from_domain:
            strict = True
            break
        relaxed = relaxed or org == organizational_domain(r.sig.domain)
    if not strict and spf_status == spf.PASS and spf_identity:
        strict = from_domain == spf_identity
        relaxed = relaxed or org == organizational_domain(spf_identity)
    return "strict" if strict else "relaxed" if relaxed else "none"
