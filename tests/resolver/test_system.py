"""Resolution through the system (getaddrinfo): real time, its worker thread
would let a virtual clock jump past every bound."""

from __future__ import annotations

import pytest

from trio_sip import ResolveError
from trio_sip.message import URI
from trio_sip.resolver import DNSResolver, SystemResolver, Target

from ._dns import Zone, dns_server

pytestmark = pytest.mark.anyio


async def test_dns_resolver_falls_back_to_the_system_for_localhost() -> None:
    async with dns_server(Zone()) as server:
        res = DNSResolver(nameservers=["127.0.0.1"], port=server.port, address_order="ipv4")
        targets = await res.resolve(URI.parse("sip:localhost:5060"))
        assert Target("udp", "127.0.0.1", 5060, "localhost") in targets
        # DNS was asked first.
        assert ("localhost.", "A") in server.queries


async def test_system_resolver_resolves_localhost_and_literals() -> None:
    res = SystemResolver()
    targets = await res.resolve(URI.parse("sip:localhost;transport=tcp"))
    assert Target("tcp", "127.0.0.1", 5060, "localhost") in targets
    assert await res.resolve(URI.parse("sips:[::1]")) == [Target("tls", "::1", 5061)]
    with pytest.raises(ResolveError, match=r"^no usable transport"):
        await res.resolve(URI.parse("sip:127.0.0.1"), transports={"tcp"})
