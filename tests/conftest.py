"""Suite-wide set-up: no DNS lookup of the tests leaves the machine.

Servers the tests start as child processes, and any in-process resolver made
without explicit name servers, read ``MOXTRIO_NAMESERVERS``. It points at a
loopback responder with no records (every name is NXDOMAIN), so a lookup the
test did not arrange fails at once instead of going to the machine's resolver.
Tests that need records start their own responder and pass it explicitly.
"""

from __future__ import annotations

import os

import pytest

from core.dns import NAMESERVERS_ENV
from tests.support.dnsresponder import DNSResponder

_responder = DNSResponder().start()
os.environ[NAMESERVERS_ENV] = f"{_responder.host}:{_responder.port}"


def pytest_unconfigure(config: pytest.Config) -> None:
    _responder.stop()
