"""DNSResolver against a real DNS server on loopback: RFC 3263 section 4."""

from __future__ import annotations

import random
import socket
from collections import Counter

import anyio
import dns.name
import pytest

from trio_sip import ResolveError
from trio_sip.message import URI
from trio_sip.resolver import DNSResolver, Target, order_srv

from ._dns import DNSServer, Zone, dns_server

pytestmark = [pytest.mark.anyio, pytest.mark.virtual_time]

D = "example.test"


def name(text: str) -> dns.name.Name:
    return dns.name.from_text(text)


def resolver_for(server: DNSServer, **options: object) -> DNSResolver:
    kwargs: dict[str, object] = {
        "nameservers": ["127.0.0.1"],
        "port": server.port,
        "system_fallback": False,
        "address_order": "ipv4",
        "rng": random.Random(3263),
    }
    kwargs.update(options)
    return DNSResolver(**kwargs)  # type: ignore[arg-type]


async def resolve(server: DNSServer, uri: str, **options: object) -> list[Target]:
    return await resolver_for(server, **options).resolve(URI.parse(uri))


def naptr(order: int, pref: int, flags: str, service: str, replacement: str) -> str:
    return f'{order} {pref} "{flags}" "{service}" "" {replacement}'


def full_zone() -> Zone:
    """NAPTR preferring TCP, then UDP, then TLS; an SRV set for each."""
    return (
        Zone()
        .add(
            f"{D}.",
            300,
            "NAPTR",
            naptr(10, 20, "s", "SIP+D2U", f"_sip._udp.{D}."),
            naptr(10, 10, "s", "SIP+D2T", f"_sip._tcp.{D}."),
            naptr(20, 5, "s", "SIPS+D2T", f"_sips._tcp.{D}."),
        )
        .add(f"_sip._udp.{D}.", 300, "SRV", f"0 0 5070 udp.{D}.")
        .add(f"_sip._tcp.{D}.", 300, "SRV", f"0 0 5071 tcp.{D}.")
        .add(f"_sips._tcp.{D}.", 300, "SRV", f"0 0 5072 tls.{D}.")
        .add(f"udp.{D}.", 300, "A", "127.0.0.10")
        .add(f"tcp.{D}.", 300, "A", "127.0.0.11")
        .add(f"tls.{D}.", 300, "A", "127.0.0.12")
        .add(f"{D}.", 300, "A", "127.0.0.99")
    )


# ----- transport selection (section 4.1) --------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("sip:127.0.0.1", Target("udp", "127.0.0.1", 5060)),
        ("sips:127.0.0.1", Target("tls", "127.0.0.1", 5061)),
        ("sip:[::1]:5070;transport=tcp", Target("tcp", "::1", 5070)),
        ("sips:127.0.0.1;transport=tcp", Target("tls", "127.0.0.1", 5061)),
        ("sip:example.test;maddr=127.0.0.7", Target("udp", "127.0.0.7", 5060, "example.test")),
        ("sip:example.test:5099;maddr=[::1]", Target("udp", "::1", 5099, "example.test")),
    ],
)
async def test_numeric_targets_need_no_dns(uri: str, expected: Target) -> None:
    async with dns_server(full_zone()) as server:
        assert await resolve(server, uri) == [expected]
        assert server.queries == []


async def test_explicit_port_means_addresses_without_naptr_or_srv() -> None:
    async with dns_server(full_zone()) as server:
        targets = await resolve(server, f"sip:{D}:5080")
        assert targets == [Target("udp", "127.0.0.99", 5080, D)]
        assert sorted(server.queries) == [(f"{D}.", "A"), (f"{D}.", "AAAA")]
        targets = await resolve(server, f"sips:{D}:5081")
        assert targets == [Target("tls", "127.0.0.99", 5081, D)]


async def test_naptr_order_and_preference_give_the_transports() -> None:
    async with dns_server(full_zone()) as server:
        targets = await resolve(server, f"sip:bob@{D}")
        assert targets == [
            Target("tcp", "127.0.0.11", 5071, D),
            Target("udp", "127.0.0.10", 5070, D),
            Target("tls", "127.0.0.12", 5072, D),
        ]
        # NAPTR told us where the SRV sets are: no blind SRV queries.
        assert server.count(f"_sip._udp.{D}", "SRV") == 1
        assert server.count(f"{D}", "A") == 0


async def test_naptr_is_filtered_to_the_callers_transports() -> None:
    async with dns_server(full_zone()) as server:
        res = resolver_for(server)
        targets = await res.resolve(URI.parse(f"sip:{D}"), transports={"udp", "tls"})
        assert [t.transport for t in targets] == ["udp", "tls"]
        targets = await res.resolve(URI.parse(f"sip:{D}"), transports={"tls"})
        assert targets == [Target("tls", "127.0.0.12", 5072, D)]


async def test_sips_uses_only_sips_naptr_records() -> None:
    async with dns_server(full_zone()) as server:
        targets = await resolve(server, f"sips:{D}")
        assert targets == [Target("tls", "127.0.0.12", 5072, D)]


async def test_unusable_naptr_records_are_skipped() -> None:
    zone = (
        Zone()
        .add(
            f"{D}.",
            300,
            "NAPTR",
            # a regexp (not for SIP), an unknown flag, an unknown service
            f'5 5 "s" "SIP+D2U" "!^.*$!sip:x@y!" _sip._udp.{D}.',
            naptr(6, 5, "u", "SIP+D2U", f"_sip._udp.{D}."),
            naptr(7, 5, "s", "SIP+D2X", f"_sip._udp.{D}."),
            naptr(7, 6, "s", "SIP+D2T", "."),
            naptr(8, 5, "s", "SIP+D2U", f"_sip._udp.{D}."),
        )
        .add(f"_sip._udp.{D}.", 300, "SRV", f"0 0 5070 udp.{D}.")
        .add(f"udp.{D}.", 300, "A", "127.0.0.10")
    )
    async with dns_server(zone) as server:
        assert await resolve(server, f"sip:{D}") == [Target("udp", "127.0.0.10", 5070, D)]
        # The replacement "." names nothing: it is never looked up.
        assert [q for q in server.queries if q[0] == "."] == []


async def test_naptr_flag_a_goes_straight_to_addresses() -> None:
    zone = (
        Zone()
        .add(f"{D}.", 300, "NAPTR", naptr(1, 1, "a", "SIP+D2T", f"host.{D}."))
        .add(f"host.{D}.", 300, "A", "127.0.0.5")
    )
    async with dns_server(zone) as server:
        assert await resolve(server, f"sip:{D}") == [Target("tcp", "127.0.0.5", 5060, D)]


async def test_no_naptr_means_srv_for_udp_tcp_tls() -> None:
    zone = full_zone()
    zone.remove(f"{D}.", "NAPTR")
    async with dns_server(zone) as server:
        targets = await resolve(server, f"sip:{D}")
        assert targets == [
            Target("udp", "127.0.0.10", 5070, D),
            Target("tcp", "127.0.0.11", 5071, D),
            Target("tls", "127.0.0.12", 5072, D),
        ]
        assert server.count(f"_sips._tcp.{D}", "SRV") == 1
        # sips looks only for _sips._tcp.
        assert await resolve(server, f"sips:{D}") == [Target("tls", "127.0.0.12", 5072, D)]


async def test_no_naptr_no_srv_means_addresses_on_the_default_port() -> None:
    zone = Zone().add(f"{D}.", 60, "A", "127.0.0.3").add(f"{D}.", 60, "AAAA", "::1")
    async with dns_server(zone) as server:
        assert await resolve(server, f"sip:{D}", address_order="ipv6") == [
            Target("udp", "::1", 5060, D),
            Target("udp", "127.0.0.3", 5060, D),
        ]
        assert await resolve(server, f"sips:{D}", address_order="ipv4") == [
            Target("tls", "127.0.0.3", 5061, D),
            Target("tls", "::1", 5061, D),
        ]
        # Without UDP the caller gets TCP (RFC 3261 section 18.1.1's fallback).
        res = resolver_for(server)
        assert await res.resolve(URI.parse(f"sip:{D}"), transports={"tcp"}) == [
            Target("tcp", "127.0.0.3", 5060, D),
            Target("tcp", "::1", 5060, D),
        ]


def _ipv6_loopback_routed() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.connect(("::1", 9))
    except OSError:
        return False
    return True


async def test_system_order_puts_reachable_ipv6_first() -> None:
    zone = (
        Zone()
        .add(f"{D}.", 60, "A", "127.0.0.3")
        .add(f"{D}.", 60, "AAAA", "::1")
        .add(f"{D}.", 60, "AAAA", "2001:db8::1")
    )
    async with dns_server(zone) as server:
        targets = await resolve(server, f"sip:{D}:5060", address_order="system")
    hosts = [t.host for t in targets]
    assert sorted(hosts) == sorted(["127.0.0.3", "::1", "2001:db8::1"])
    if _ipv6_loopback_routed():
        assert hosts.index("::1") < hosts.index("127.0.0.3")
    else:
        assert hosts[0] == "127.0.0.3"


async def test_transport_param_queries_only_its_srv() -> None:
    async with dns_server(full_zone()) as server:
        targets = await resolve(server, f"sip:{D};transport=udp")
        assert targets == [Target("udp", "127.0.0.10", 5070, D)]
        assert server.count(f"{D}", "NAPTR") == 0
        assert server.count(f"_sip._tcp.{D}", "SRV") == 0
        assert await resolve(server, f"sips:{D};transport=tcp") == [
            Target("tls", "127.0.0.12", 5072, D)
        ]


async def test_transport_param_without_srv_uses_its_default_port() -> None:
    zone = Zone().add(f"{D}.", 60, "A", "127.0.0.3")
    async with dns_server(zone) as server:
        assert await resolve(server, f"sip:{D};transport=tls") == [
            Target("tls", "127.0.0.3", 5061, D)
        ]


async def test_maddr_name_is_resolved_instead_of_the_host() -> None:
    zone = full_zone().add(f"relay.{D}.", 60, "A", "127.0.0.44")
    async with dns_server(zone) as server:
        targets = await resolve(server, f"sip:bob@{D}:5090;maddr=relay.{D}")
        assert targets == [Target("udp", "127.0.0.44", 5090, D)]


@pytest.mark.parametrize(
    ("uri", "transports"),
    [
        ("sip:example.test;transport=sctp", None),
        ("sips:example.test;transport=udp", None),
        ("sip:example.test;transport=tcp", {"udp"}),
        ("sips:example.test", {"udp", "tcp"}),
        ("tel:+4930123", None),
    ],
)
async def test_unusable_transport_is_a_resolve_error(uri: str, transports: set[str] | None) -> None:
    async with dns_server(full_zone()) as server:
        with pytest.raises(ResolveError, match=r"^no usable transport"):
            await resolver_for(server).resolve(URI.parse(uri), transports=transports)


# ----- SRV priority and weights (RFC 2782) ------------------------------------------------


def weighted_zone() -> Zone:
    return (
        Zone()
        .add(
            f"_sip._udp.{D}.",
            300,
            "SRV",
            f"10 10 5001 a.{D}.",
            f"10 30 5002 b.{D}.",
            f"10 60 5003 c.{D}.",
            f"20 0 5004 backup.{D}.",
        )
        .add(f"a.{D}.", 300, "A", "127.0.1.1")
        .add(f"b.{D}.", 300, "A", "127.0.1.2")
        .add(f"c.{D}.", 300, "A", "127.0.1.3")
        .add(f"backup.{D}.", 300, "A", "127.0.1.4")
    )


async def test_srv_weights_share_the_first_place() -> None:
    async with dns_server(weighted_zone()) as server:
        res = resolver_for(server, rng=random.Random(2782))
        firsts: Counter[int] = Counter()
        rounds = 3000
        for _ in range(rounds):
            targets = await res.resolve(URI.parse(f"sip:{D};transport=udp"))
            assert len(targets) == 4
            # Priority first: the backup is always last.
            assert targets[-1].port == 5004
            firsts[targets[0].port] += 1
        shares = {port: count / rounds for port, count in firsts.items()}
        assert shares[5001] == pytest.approx(0.1, abs=0.03)
        assert shares[5002] == pytest.approx(0.3, abs=0.04)
        assert shares[5003] == pytest.approx(0.6, abs=0.04)
        # Each name was asked once: the rest came from the cache.
        assert server.count(f"_sip._udp.{D}", "SRV") == 1
        assert res.statistics().queries == 1 + 2 * 4


def test_order_srv_puts_zero_weights_last_almost_always() -> None:
    class Rec:
        def __init__(self, priority: int, weight: int, name: str) -> None:
            self.priority, self.weight, self.name = priority, weight, name

    records = [Rec(1, 0, "zero"), Rec(1, 100, "heavy"), Rec(0, 5, "first")]
    rng = random.Random(7)
    orders = [tuple(r.name for r in order_srv(records, rng)) for _ in range(2000)]
    assert all(order[0] == "first" for order in orders)
    zero_second = sum(order[1] == "zero" for order in orders) / len(orders)
    # Chosen first in its priority only when the draw is 0: 1 in 101.
    assert zero_second < 0.03
    assert ("first", "heavy", "zero") in orders


async def test_srv_target_dot_means_not_available() -> None:
    zone = (
        Zone()
        .add(f"_sip._udp.{D}.", 300, "SRV", "0 0 5060 .")
        .add(f"_sip._tcp.{D}.", 300, "SRV", f"0 0 5071 tcp.{D}.")
        .add(f"tcp.{D}.", 300, "A", "127.0.0.11")
    )
    async with dns_server(zone) as server:
        assert await resolve(server, f"sip:{D}") == [Target("tcp", "127.0.0.11", 5071, D)]
        assert [q for q in server.queries if q[0] == "."] == []


async def test_a_truncated_answer_is_asked_again_over_tcp() -> None:
    zone = weighted_zone()
    zone.truncated.add(name(f"_sip._udp.{D}"))
    async with dns_server(zone, tcp=True) as server:
        targets = await resolve(server, f"sip:{D};transport=udp")
        assert sorted(t.port for t in targets) == [5001, 5002, 5003, 5004]
        assert server.tcp_queries == [(f"_sip._udp.{D}.", "SRV")]


# ----- the cache --------------------------------------------------------------------------


async def test_cache_honours_the_ttl() -> None:
    zone = Zone().add(f"{D}.", 30, "A", "127.0.0.3")
    async with dns_server(zone) as server:
        res = resolver_for(server)
        uri = URI.parse(f"sip:{D}:5060")
        start = anyio.current_time()
        assert await res.resolve(uri) == [Target("udp", "127.0.0.3", 5060, D)]
        await anyio.sleep(29)
        zone.remove(f"{D}.", "A")
        zone.add(f"{D}.", 30, "A", "127.0.0.4")
        assert await res.resolve(uri) == [Target("udp", "127.0.0.3", 5060, D)]
        assert server.count(D, "A") == 1
        await anyio.sleep_until(start + 30.5)
        assert await res.resolve(uri) == [Target("udp", "127.0.0.4", 5060, D)]
        assert server.count(D, "A") == 2
        assert res.statistics().cache_hits >= 2


async def test_negative_answers_are_cached_briefly() -> None:
    # The SOA minimum (5 s) is below negative_ttl: it wins (RFC 2308).
    zone = Zone(negative_minimum=5).add(f"other.{D}.", 60, "A", "127.0.0.1")
    async with dns_server(zone) as server:
        res = resolver_for(server, negative_ttl=30.0)
        uri = URI.parse(f"sip:{D}:5060")
        with pytest.raises(ResolveError, match=r"^not found"):
            await res.resolve(uri)
        zone.add(f"{D}.", 60, "A", "127.0.0.8")
        await anyio.sleep(4)
        with pytest.raises(ResolveError, match=r"^not found"):
            await res.resolve(uri)
        assert server.count(D, "A") == 1
        await anyio.sleep(2)
        assert await res.resolve(uri) == [Target("udp", "127.0.0.8", 5060, D)]
        assert res.statistics().failures == {"not found": 2}


async def test_negative_ttl_bounds_a_long_soa_minimum() -> None:
    zone = Zone(negative_minimum=3600)
    async with dns_server(zone) as server:
        res = resolver_for(server, negative_ttl=10.0)
        uri = URI.parse(f"sip:{D}:5060")
        with pytest.raises(ResolveError):
            await res.resolve(uri)
        zone.add(f"{D}.", 60, "A", "127.0.0.8")
        await anyio.sleep(10.5)
        assert await res.resolve(uri) == [Target("udp", "127.0.0.8", 5060, D)]


# ----- bad answers ------------------------------------------------------------------------


async def test_nothing_anywhere_is_not_found() -> None:
    async with dns_server(Zone()) as server:
        with pytest.raises(ResolveError, match=r"^not found"):
            await resolve(server, f"sip:{D}")
        # NAPTR, three SRV sets, then A and AAAA: every step was tried.
        assert {q[1] for q in server.queries} == {"NAPTR", "SRV", "A", "AAAA"}


async def test_empty_answers_are_not_found() -> None:
    # The name exists (it has a TXT record) but has nothing we asked for.
    zone = Zone().add(f"{D}.", 60, "TXT", '"hello"')
    async with dns_server(zone) as server:
        with pytest.raises(ResolveError, match=r"^not found"):
            await resolve(server, f"sip:{D}")


async def test_servfail_is_a_server_failure() -> None:
    zone = Zone().add(f"{D}.", 60, "A", "127.0.0.1")
    zone.servfail.add(name(D))
    async with dns_server(zone) as server:
        with pytest.raises(ResolveError, match=r"^server failure"):
            await resolve(server, f"sip:{D}:5060")


async def test_unparsable_answer_ends_at_the_query_bound() -> None:
    zone = Zone().add(f"{D}.", 60, "A", "127.0.0.1")
    # A header that promises an answer record, then nothing. dnspython drops
    # an unparsable datagram as it drops a spoofed one, and keeps waiting:
    # the query bound ends it.
    zone.raw[name(D)] = b"\x00\x00\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00"
    async with dns_server(zone) as server:
        start = anyio.current_time()
        with pytest.raises(ResolveError, match=r"^timeout"):
            await resolve(server, f"sip:{D}:5060", query_bound=2.0)
        assert anyio.current_time() - start == pytest.approx(2.0, abs=0.1)


async def test_a_name_dns_cannot_carry_is_malformed() -> None:
    async with dns_server(Zone()) as server:
        with pytest.raises(ResolveError, match=r"^malformed answer"):
            await resolve(server, f"sip:{'a' * 64}.test:5060")
        assert server.queries == []


async def test_naptr_replacement_loop_is_refused() -> None:
    zone = (
        Zone()
        .add(f"{D}.", 60, "NAPTR", naptr(1, 1, "", "", f"loop1.{D}."))
        .add(f"loop1.{D}.", 60, "NAPTR", naptr(1, 1, "", "", f"loop2.{D}."))
        .add(f"loop2.{D}.", 60, "NAPTR", naptr(1, 1, "", "", f"{D}."))
    )
    async with dns_server(zone) as server:
        with pytest.raises(ResolveError, match=r"^loop"):
            await resolve(server, f"sip:{D}")


async def test_non_terminal_naptr_is_followed() -> None:
    zone = (
        Zone()
        .add(f"{D}.", 60, "NAPTR", naptr(1, 1, "", "", f"sip.{D}."))
        .add(f"sip.{D}.", 60, "NAPTR", naptr(1, 1, "s", "SIP+D2T", f"_sip._tcp.{D}."))
        .add(f"_sip._tcp.{D}.", 300, "SRV", f"0 0 5071 tcp.{D}.")
        .add(f"tcp.{D}.", 300, "A", "127.0.0.11")
    )
    async with dns_server(zone) as server:
        assert await resolve(server, f"sip:{D}") == [Target("tcp", "127.0.0.11", 5071, D)]


async def test_cname_loop_is_refused() -> None:
    zone = Zone().add(f"{D}.", 60, "CNAME", f"alias.{D}.").add(f"alias.{D}.", 60, "CNAME", f"{D}.")
    async with dns_server(zone) as server:
        with pytest.raises(ResolveError, match=r"^loop"):
            await resolve(server, f"sip:{D}:5060")


async def test_a_silent_server_is_bounded_per_query() -> None:
    zone = Zone().add(f"{D}.", 60, "A", "127.0.0.1")
    zone.delays[name(D)] = 1000.0
    async with dns_server(zone) as server:
        start = anyio.current_time()
        with pytest.raises(ResolveError, match=r"^timeout"):
            await resolve(server, f"sip:{D}:5060", query_bound=3.0)
        assert anyio.current_time() - start == pytest.approx(3.0, abs=0.1)


async def test_the_whole_resolution_is_bounded() -> None:
    zone = Zone()
    # Each query alone fits its bound; NAPTR then SRV then A in a row do not.
    for owner in (D, f"_sip._udp.{D}", f"_sip._tcp.{D}", f"_sips._tcp.{D}"):
        zone.delays[name(owner)] = 3.0
    async with dns_server(zone) as server:
        start = anyio.current_time()
        with pytest.raises(ResolveError, match=r"^timeout"):
            await resolve(server, f"sip:{D}", query_bound=4.0, resolve_bound=5.0)
        assert anyio.current_time() - start == pytest.approx(5.0, abs=0.1)


async def test_the_caller_can_tighten_the_bound() -> None:
    zone = Zone().add(f"{D}.", 60, "A", "127.0.0.1")
    zone.delays[name(D)] = 1000.0
    async with dns_server(zone) as server:
        start = anyio.current_time()
        with anyio.move_on_after(0.5) as scope:
            await resolve(server, f"sip:{D}:5060")
        assert scope.cancelled_caught
        assert anyio.current_time() - start == pytest.approx(0.5, abs=0.05)
