"""Fixtures: a DNS server on loopback for the resolver and mailauth tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.dns_server import DnsServer


@pytest.fixture
def dns_server() -> Iterator[DnsServer]:
    with DnsServer() as server:
        yield server
