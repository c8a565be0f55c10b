"""RFC 3263 / RFC 2782 corner cases of the resolvers: when SRV records
forbid the address fallback, and transports a URI or caller rules out."""

from __future__ import annotations

import random
from collections.abc import Callable

import dns.name
import pytest

from trio_sip import ResolveError
from trio_sip.message import URI
from trio_sip.resolver import DNSResolver, SystemResolver, Target

from ._dns import DNSServer, Zone, dns_server

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

D = "example.test"


def resolver_for(server: DNSServer) -> DNSResolver:
    return DNSResolver(
        nameservers=["127.0.0.1"],
        port=server.port,
        system_fallback=False,
        address_order="ipv4",
        rng=random.Random(2782),
    )


def udp_naptr(zone: Zone) -> Zone:
    return zone.add(f"{D}.", 300, "NAPTR", f'10 10 "s" "SIP+D2U" "" _sip._udp.{D}.')


def srv_dot(zone: Zone) -> Zone:
    # RFC 2782: a lone "." target: the service is decidedly not available.
    return zone.add(f"_sip._udp.{D}.", 300, "SRV", "0 0 5060 .")


def srv_to_nowhere(zone: Zone) -> Zone:
    # An SRV set whose only target has no address.
    return zone.add(f"_sip._udp.{D}.", 300, "SRV", f"0 0 5070 gone.{D}.")


@pytest.mark.parametrize(
    ("uri", "setup"),
    [
        (f"sip:{D};transport=udp", srv_dot),
        (f"sip:{D}", srv_dot),
        (f"sip:{D}", lambda zone: srv_dot(udp_naptr(zone))),
        (f"sip:{D};transport=udp", srv_to_nowhere),
        (f"sip:{D}", srv_to_nowhere),
        (f"sip:{D}", lambda zone: srv_to_nowhere(udp_naptr(zone))),
    ],
    ids=[
        "dot-explicit",
        "dot-no-naptr",
        "dot-naptr",
        "gone-explicit",
        "gone-no-naptr",
        "gone-naptr",
    ],
)
async def test_srv_records_rule_out_the_address_fallback(
    uri: str, setup: Callable[[Zone], Zone]
) -> None:
    # RFC 3263 section 4.2 / RFC 2782 "Usage rules": the domain's own A/AAAA
    # records on the default port are used only when there are no SRV
    # records. A published SRV set that leads nowhere must not send the
    # request to whatever the bare domain points at (a web server, say).
    zone = setup(Zone().add(f"{D}.", 300, "A", "127.0.0.99"))
    async with dns_server(zone) as server:
        with pytest.raises(ResolveError, match=r"^not found"):
            await resolver_for(server).resolve(URI.parse(uri))
        assert server.count(D, "A") == 0


async def test_the_address_fallback_still_follows_a_failed_srv_lookup() -> None:
    # Only SRV records stop the fallback: a server failure on the SRV query
    # is not an answer, RFC 2782 falls back to the address lookup.
    zone = Zone().add(f"{D}.", 300, "A", "127.0.0.99")
    zone.servfail.add(dns.name.from_text(f"_sip._udp.{D}."))
    async with dns_server(zone) as server:
        targets = await resolver_for(server).resolve(URI.parse(f"sip:{D};transport=udp"))
        assert targets == [Target("udp", "127.0.0.99", 5060, D)]


async def test_an_empty_transport_set_allows_no_transport() -> None:
    # The Resolver protocol: None means every transport; an empty collection
    # is a caller that can send over nothing.
    async with dns_server(Zone()) as server:
        with pytest.raises(ResolveError, match=r"^no usable transport"):
            await resolver_for(server).resolve(URI.parse("sip:127.0.0.1"), transports=set())


@pytest.mark.parametrize(
    "uri",
    [
        # RFC 3261 section 26.2.2 / RFC 3263 section 4.1: sips is TLS only.
        "sips:127.0.0.1;transport=udp",
        # RFC 3263 section 4.1: the transport the URI names SHOULD be used,
        # not silently replaced by UDP.
        "sip:127.0.0.1;transport=sctp",
    ],
)
async def test_system_resolver_refuses_the_transports_dns_resolver_refuses(uri: str) -> None:
    with pytest.raises(ResolveError, match=r"^no usable transport"):
        await SystemResolver().resolve(URI.parse(uri))
