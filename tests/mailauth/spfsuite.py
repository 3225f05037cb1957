"""The open SPF test suite (``tests/data/spf/rfc7208-tests.yml``) as data for pytest.

The YAML (from the openspf project, BSD licence in
``rfc7208-tests.LICENSE`` beside it, shipped in pyspf's source
distribution) describes DNS zones and expected results. :class:`ZoneLookup`
serves a scenario's zones the way the suite's drivers do: ``SPF`` records
double as TXT unless the name has its own TXT entries, ``TIMEOUT`` makes
queries of types not listed before it fail temporarily.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from core.mailauth.lookup import TempError, reverse_name

SUITE = Path(__file__).parent.parent / "data" / "spf" / "rfc7208-tests.yml"


class ZoneLookup:
    """A :class:`core.mailauth.lookup.Lookup` answering from one scenario's zonedata."""

    def __init__(self, zonedata: dict[str, list[Any]]) -> None:
        self.zones = {k.lower().rstrip("."): v for k, v in zonedata.items()}

    def _get(self, name: str, qtype: str, depth: int = 0) -> list[Any]:
        labels = name.rstrip(".").split(".")
        if any(len(label) > 63 for label in labels):
            raise TempError("DNS label too long")
        key = ".".join(x for x in labels if x).lower()
        entries = self.zones.get(key)
        if entries is None:
            if key.startswith("error."):
                raise TempError("DNS timeout")
            return []
        cname = [e["CNAME"] for e in entries if isinstance(e, dict) and "CNAME" in e]
        if cname and depth < 8:
            return self._get(cname[0], qtype, depth + 1)
        types = [qtype]
        if qtype == "TXT" and not any(isinstance(e, dict) and "TXT" in e for e in entries):
            types.append("SPF")
        out: list[Any] = []
        for e in entries:
            if e == "TIMEOUT":
                if not out:
                    raise TempError("DNS timeout")
                return out
            (t, v), = e.items()
            if t not in types:
                continue
            if v == "TIMEOUT":
                raise TempError("DNS timeout")
            if v == "NONE":
                continue
            out.append(v)
        return out

    async def txt(self, name: str) -> list[str]:
        out = []
        for v in self._get(name, "TXT"):
            parts = v if isinstance(v, list) else [v]
            out.append("".join(p if isinstance(p, str) else p.decode("utf-8", "replace") for p in parts))
        return out

    async def a(self, name: str) -> list[str]:
        return [str(v) for v in self._get(name, "A")]

    async def aaaa(self, name: str) -> list[str]:
        return [str(v) for v in self._get(name, "AAAA")]

    async def mx(self, name: str) -> list[tuple[int, str]]:
        return [(int(p), str(h).lower().rstrip(".")) for p, h in self._get(name, "MX")]

    async def ptr(self, ip: str) -> list[str]:
        return [str(v).lower().rstrip(".") for v in self._get(reverse_name(ip), "PTR")]


@dataclass
class Case:
    scenario: str
    name: str
    host: str
    mailfrom: str
    helo: str
    results: list[str]
    explanation: str | None
    zones: dict[str, list[Any]]

    @property
    def id(self) -> str:
        return self.name


def load_cases() -> list[Case]:
    cases = []
    with SUITE.open("rb") as f:
        for doc in yaml.safe_load_all(f):
            for name, t in doc["tests"].items():
                result = t["result"]
                cases.append(Case(
                    doc["description"], name, str(ipaddress.ip_address(t["host"])),
                    t.get("mailfrom", "") or "", t.get("helo", "") or "",
                    result if isinstance(result, list) else [result],
                    t.get("explanation"), doc.get("zonedata") or {},
                ))
    return cases
