"""Legs: creation, binding, reachability, Via handling, no descriptor leaks."""

from __future__ import annotations

import os
import socket

import anyio
import pytest

from trio_sip import TransportError
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Response, Via, parse_message
from trio_sip.transport import Leg, TCPLeg, TLSLeg, UDPLeg
from trio_sip.transport.leg import parse_leg_spec

from ._peer import request


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("udp:127.0.0.1:5060", ("udp", "127.0.0.1", 5060)),
        ("tcp:[::1]:5070", ("tcp", "::1", 5070)),
        ("tls:0.0.0.0", ("tls", "0.0.0.0", 5061)),
        ("TCP:10.0.0.1:0", ("tcp", "10.0.0.1", 0)),
        ("127.0.0.1:5080", ("udp", "127.0.0.1", 5080)),
    ],
)
def test_spec_strings(spec: str, expected: tuple[str, str, int]) -> None:
    assert parse_leg_spec(spec) == expected


@pytest.mark.parametrize("spec", ["udp:example.com:5060", "sctp:1.2.3.4:5060", "udp:1.2.3.4:99999"])
def test_bad_spec_strings(spec: str) -> None:
    with pytest.raises(ValueError, match=r"."):
        parse_leg_spec(spec)


def test_create_from_every_form() -> None:
    assert isinstance(Leg.create("udp:127.0.0.1:0"), UDPLeg)
    assert isinstance(Leg.create({"proto": "tcp", "addr": "127.0.0.1", "port": 0}), TCPLeg)
    tls = Leg.create({"proto": "tls", "addr": "::1", "port": 0, "verify": False})
    assert isinstance(tls, TLSLeg)
    assert tls.family == socket.AF_INET6
    leg = UDPLeg("127.0.0.1")
    assert Leg.create(leg) is leg
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        from_sock = Leg.create(sock)
        assert isinstance(from_sock, UDPLeg)
        assert from_sock.port == sock.getsockname()[1]


def test_can_deliver_to() -> None:
    udp = UDPLeg("127.0.0.1", 5060)
    assert udp.can_deliver_to(("127.0.0.1", 5070))
    assert udp.can_deliver_to("127.0.0.2:5070", "udp")
    assert not udp.can_deliver_to(("127.0.0.1", 5070), "tcp")
    assert not udp.can_deliver_to(("::1", 5070))
    assert not udp.can_deliver_to(("192.0.2.1", 5060))  # loopback leg, remote peer
    assert UDPLeg("0.0.0.0").can_deliver_to(("192.0.2.1", 5060))
    assert TCPLeg("::").can_deliver_to(("2001:db8::1", 5060), "TCP")


def test_a_connected_socket_reaches_only_its_peer() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.connect(("127.0.0.1", 5099))
        leg = Leg.create(sock)
        assert leg.peer == ("127.0.0.1", 5099)
        assert leg.can_deliver_to(("127.0.0.1", 5099))
        assert not leg.can_deliver_to(("127.0.0.1", 5098))
        assert not leg.can_deliver_to(("127.0.0.2", 5099), "udp")


def test_via_is_added_and_recognised() -> None:
    leg = UDPLeg("127.0.0.1", 5099)
    req = request("OPTIONS", "sip:bob@127.0.0.1")
    via = leg.add_via(req)
    assert str(req.top_via) == str(via)
    assert via.has_magic_cookie
    assert via.rport is True
    assert (via.host, via.port, via.transport) == ("127.0.0.1", 5099, "UDP")
    assert leg.is_our_via(via)
    assert not leg.is_our_via(Via.parse("SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKx"))
    assert not TCPLeg("127.0.0.1", 5099).is_our_via(via)
    response = Response(200, headers=[("Via", str(via)), ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z")])
    assert leg.strip_via(response) == via
    assert parse_message(bytes(response)).top_via.host == "192.0.2.1"
    assert leg.strip_via(response) is None


def test_contact_uri() -> None:
    assert str(UDPLeg("127.0.0.1", 5060).contact_uri("alice")) == "sip:alice@127.0.0.1:5060"
    assert str(TCPLeg("::1", 5062).contact_uri()) == "sip:[::1]:5062;transport=tcp"
    assert str(TLSLeg("127.0.0.1", 5061, verify=False).contact_uri("b")) == "sips:b@127.0.0.1:5061"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "spec", ["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "udp:[::1]:0", "tcp:[::1]:0"]
)
async def test_port_zero_is_read_back(spec: str) -> None:
    async with Dispatcher([spec]) as disp:
        leg = disp.legs[0]
        assert leg.port != 0
        sock_type = socket.SOCK_DGRAM if leg.proto == "udp" else socket.SOCK_STREAM
        with socket.socket(leg.family, sock_type) as probe, pytest.raises(OSError, match="in use"):
            probe.bind((leg.host, leg.port))


@pytest.mark.anyio
@pytest.mark.parametrize("proto", ["udp", "tcp"])
async def test_a_port_held_elsewhere_is_not_taken(proto: str) -> None:
    kind = socket.SOCK_DGRAM if proto == "udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as holder:
        holder.bind(("127.0.0.1", 0))
        if proto == "tcp":
            holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(TransportError, match="cannot bind"):
            async with Dispatcher([f"{proto}:127.0.0.1:{port}"]):
                pass


_RMEM_MAX = "/proc/sys/net/core/rmem_max"


@pytest.mark.skipif(not os.path.exists(_RMEM_MAX), reason="Linux caps SO_RCVBUF at rmem_max")
def test_a_receive_buffer_capped_by_the_system_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with open(_RMEM_MAX) as limit:
        rmem_max = int(limit.read())
    caplog.set_level("INFO", logger="trio_sip.transport")
    roomy = UDPLeg("127.0.0.1", receive_buffer=4 * rmem_max)
    roomy.bind_nowait()
    modest = UDPLeg("127.0.0.1", receive_buffer=4096)
    modest.bind_nowait()
    try:
        said = [r.getMessage() for r in caplog.records]
        # Asked more than the system allows: said, with what it gave and the knob.
        assert len(said) == 1, said
        assert f"udp 127.0.0.1:{roomy.port}:" in said[0]
        assert f"receive buffer of {2 * rmem_max} bytes, not {4 * rmem_max}" in said[0]
        assert "net.core.rmem_max" in said[0]
    finally:
        roomy.close()
        modest.close()


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.anyio
async def test_no_descriptor_leaks() -> None:
    before = _open_fds()
    for _ in range(3):
        async with (
            Dispatcher(["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as a,
            Dispatcher(["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as b,
        ):
            received = anyio.Event()
            b.set_receiver(lambda *args, done=received: done.set())
            tcp_port = b.get_legs(proto="tcp")[0].port
            await a.deliver(request("OPTIONS", f"sip:b@127.0.0.1:{tcp_port};transport=tcp"))
            with anyio.fail_after(5):
                await received.wait()
            extra = await a.add_leg("udp:127.0.0.1:0")
            await a.remove_leg(extra)
            assert extra not in a.legs
    assert _open_fds() == before


@pytest.mark.anyio
async def test_get_legs_filters() -> None:
    async with Dispatcher(["udp:127.0.0.1:0", "tcp:127.0.0.1:0", "udp:[::1]:0"]) as disp:
        assert len(disp.get_legs(proto="udp")) == 2
        assert [leg.host for leg in disp.get_legs(addr="::1")] == ["::1"]
        tcp = disp.get_legs(proto="tcp")[0]
        assert disp.get_legs(port=tcp.port, proto="tcp") == [tcp]
        assert disp.get_legs(sub=lambda leg: leg.reliable) == [tcp]
        assert disp.get_legs(proto="udp", addr="::1", sub=lambda leg: False) == []


@pytest.mark.parametrize(
    ("top", "ours"),
    [
        ("SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKa;rport", True),
        ("SIP/2.0/UDP 127.0.0.1:5099", True),
        ("SIP/2.0/UDP 127.0.0.1:5099 ;branch=z9hG4bKa", True),  # LWS: parsed, still ours
        ("SIP/2.0/UDP 127.0.0.1:50991;branch=z9hG4bKa", False),  # a prefix, not our port
        ("SIP/2.0/UDP 127.0.0.1:5098;branch=z9hG4bKa", False),
        ("SIP/2.0/TCP 127.0.0.1:5099;branch=z9hG4bKa", False),
        ("SIP/2.0/UDP 127.0.0.2:5099;branch=z9hG4bKa", False),
        ("SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKa, SIP/2.0/UDP 192.0.2.1", True),
    ],
)
def test_our_via_is_recognised_with_and_without_parsing(top: str, ours: bool) -> None:
    leg = UDPLeg("127.0.0.1", 5099)
    response = Response(200, headers=[("Via", top), ("Via", "SIP/2.0/UDP 192.0.2.1;branch=z")])
    assert leg.check_response(response) is ours
    before = bytes(response)
    assert leg.remove_our_via(response) is ours
    if ours:
        assert parse_message(bytes(response)).top_via.host == "192.0.2.1"
    else:
        assert bytes(response) == before


def test_via_text_is_what_add_via_writes() -> None:
    leg = UDPLeg("127.0.0.1", 5099)
    req = request("OPTIONS", "sip:bob@127.0.0.1")
    via = leg.add_via(req, branch="z9hG4bKfixed")
    assert req.headers.get("via") == leg.via_text("z9hG4bKfixed") == str(via)


def test_an_advertised_address_with_its_own_port_is_recognised() -> None:
    # A NAT forwards 203.0.113.5:6000 to us: our Via says so, and the
    # responses that come back with it are ours.
    leg = UDPLeg("127.0.0.1", 5099, advertise="203.0.113.5:6000")
    req = request("OPTIONS", "sip:bob@127.0.0.1")
    via = leg.add_via(req)
    assert (via.host, via.port) == ("203.0.113.5", 6000)
    assert leg.is_our_via(via)
    assert not leg.is_our_via(Via.parse("SIP/2.0/UDP 203.0.113.5:5099;branch=z9hG4bKx"))
    assert not leg.is_our_via(Via.parse("SIP/2.0/UDP 127.0.0.1:5099;branch=z9hG4bKx"))
    plain = UDPLeg("127.0.0.1", 5099, advertise="203.0.113.5")
    assert plain.is_our_via(Via.parse("SIP/2.0/UDP 203.0.113.5:5099;branch=z9hG4bKx"))
    assert not plain.is_our_via(Via.parse("SIP/2.0/UDP 203.0.113.5:6000;branch=z9hG4bKx"))
