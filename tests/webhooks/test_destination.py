"""Webhook destinations outside localserve: internal addresses refused after
resolution, an allow-list, and credentials in URLs kept out of logs and results.

Real parts: the plugin's HTTP client, the store, a receiver on loopback and
the tests' DNS responder for names that resolve to internal addresses.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from core.dns import Resolver
from plugins.webhooks.destination import address_class, redact_url
from tests.support.dnsresponder import DNSResponder
from tests.webhooks.helpers import Harness, account_edit, event, harness, receiver

RECORDS = {
    "loopback.test.example": {"A": ["127.0.0.1"]},
    "private.test.example": {"A": ["10.1.2.3"]},
    "mixed.test.example": {"A": ["192.0.2.10", "192.168.1.1"]},
    "metadata.test.example": {"A": ["169.254.169.254"]},
    "ula.test.example": {"AAAA": ["fd12:3456::1"]},
}


@pytest.mark.parametrize(
    ("ip", "kind"),
    [
        ("127.0.0.1", "loopback"), ("127.9.9.9", "loopback"), ("::1", "loopback"),
        ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.0.1", "private"),
        ("169.254.1.1", "link-local"), ("fe80::1", "link-local"),
        ("fc00::1", "unique-local"), ("fd12::1", "unique-local"),
        ("100.64.0.1", "CGNAT"), ("100.127.255.254", "CGNAT"),
        ("169.254.169.254", "cloud metadata"), ("fd00:ec2::254", "cloud metadata"),
        ("0.0.0.0", "unspecified"), ("::ffff:10.0.0.1", "private"),
        ("8.8.8.8", None), ("2001:4860:4860::8888", None), ("100.128.0.1", None),
    ],
)
def test_address_classes(ip: str, kind: str | None) -> None:
    assert address_class(ipaddress.ip_address(ip)) == kind


def test_redact_url() -> None:
    assert redact_url("http://user:s3cret@host.example:81/p?q=1") == "http://user:xxxxx@host.example:81/p?q=1"
    assert redact_url("https://host.example/p") == "https://host.example/p"


@asynccontextmanager
async def outside_localserve(tmp_path: Path, url: str, settings: str = "") -> AsyncIterator[Harness]:
    with DNSResponder(RECORDS) as dns:
        resolver = Resolver(dns.nameservers, port=dns.port, lifetime=3)
        async with harness(
            tmp_path, account_edit(out_url=url), settings=settings, localserve=False,
            resolver=resolver,
        ) as h:
            yield h


async def _first_result(h: Harness) -> dict[str, Any]:
    rows = await h.wait_rows(
        "SELECT results FROM webhook_queue WHERE results NOT LIKE '%delivering...%' AND results != '[]'"
    )
    return dict(json.loads(rows[0][0])[-1])


@pytest.mark.parametrize(
    ("host", "shown", "kind"),
    [
        ("127.0.0.1", "127.0.0.1", "loopback"),
        ("loopback.test.example", "loopback.test.example resolves to 127.0.0.1", "loopback"),
        ("private.test.example", "private.test.example resolves to 10.1.2.3", "private"),
        ("mixed.test.example", "mixed.test.example resolves to 192.168.1.1", "private"),
        ("169.254.10.10", "169.254.10.10", "link-local"),
        ("ula.test.example", "ula.test.example resolves to fd12:3456::1", "unique-local"),
        ("100.64.1.1", "100.64.1.1", "CGNAT"),
        ("metadata.test.example", "metadata.test.example resolves to 169.254.169.254", "cloud metadata"),
    ],
)
async def test_internal_destinations_are_refused_with_a_stored_error(
    tmp_path: Path, host: str, shown: str, kind: str
) -> None:
    async with receiver() as rec:
        url = f"http://{host}:{rec.port}/out"
        async with outside_localserve(tmp_path, url) as h:
            await h.raise_event(event())
            result = await _first_result(h)
    assert result["success"] is False
    assert f"webhook destination refused: {shown}, a {kind} address" in result["error"]
    assert "AllowedWebhookNetworks" in result["error"]
    assert rec.requests == []


async def test_allow_list_admits_a_network_and_url_credentials_stay_private(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with receiver() as rec:
        url = f"http://hookuser:s3cret-pw@loopback.test.example:{rec.port}/out"
        settings = "AllowedWebhookNetworks:\n  - 127.0.0.0/8\n"
        async with outside_localserve(tmp_path, url, settings) as h:
            await h.raise_event(event())
            (req,) = await rec.wait(1)
            await h.wait_rows("SELECT id FROM webhook_retired")
            stored = await h.rows("SELECT results FROM webhook_retired")
    # Sent to the checked address with the name as Host, userinfo as Basic auth.
    assert req.header("Host") == f"loopback.test.example:{rec.port}"
    assert req.header("Authorization") == "Basic " + base64.b64encode(b"hookuser:s3cret-pw").decode()
    assert "s3cret-pw" not in json.dumps(stored)
    assert "hookuser:xxxxx@loopback.test.example" in json.dumps(stored)
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert "s3cret-pw" not in logged and "webhook delivered" in caplog.text


async def test_refused_attempt_error_hides_url_credentials(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with outside_localserve(tmp_path, "http://u:topsecret@10.9.8.7:9/x") as h:
        await h.raise_event(event())
        result = await _first_result(h)
    logged = caplog.text + " ".join(str(vars(r)) for r in caplog.records)
    assert "topsecret" not in json.dumps(result) and "topsecret" not in logged
    assert result["error"].startswith('http transact: Post "http://u:xxxxx@10.9.8.7:9/x": webhook destination refused')


async def test_localhost_names_are_loopback_refused_outside_and_used_in_localserve(tmp_path: Path) -> None:
    async with receiver() as rec:
        url = f"http://localhost:{rec.port}/out"
        async with outside_localserve(tmp_path / "a", url) as h:
            await h.raise_event(event())
            result = await _first_result(h)
        assert "webhook destination refused: localhost resolves to 127.0.0.1, a loopback address" in result["error"]
        assert rec.requests == []
        async with harness(tmp_path / "b", account_edit(out_url=url)) as h:
            await h.raise_event(event())
            (req,) = await rec.wait(1)
    assert req.header("Host") == f"localhost:{rec.port}"


async def test_redirects_are_not_followed(tmp_path: Path) -> None:
    async with receiver(statuses={"/out": 302}) as rec:
        rec.locations["/out"] = rec.url("/elsewhere")
        settings = "AllowedWebhookNetworks:\n  - 127.0.0.1\n"
        async with outside_localserve(tmp_path, rec.url("/out"), settings) as h:
            await h.raise_event(event())
            result = await _first_result(h)
            await rec.wait(1, "/out")
    assert result["code"] == 302 and 'http status "302 Found", expected 2xx' in result["error"]
    assert rec.for_path("/elsewhere") == []
