"""Dispatcher.respond_nowait: a response sent at once, in the caller's task, or not at all.

It goes out over a UDP leg when the top Via's destination (RFC 3261 section
18.2.2 with RFC 3581: maddr, else received/rport, else sent-by) is an IP
address; a name to resolve, a stream, or no leg that reaches the address
say False and send nothing, for deliver() to do the work. The peers here are
plain sockets of the socket module on loopback, so that what arrives is what
the Dispatcher sent, and nothing of trio-sip stands on the other side.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import anyio
import pytest

from trio_sip import DeliveryError, DeliveryFailure, TransportError
from trio_sip.dispatcher import Dispatcher
from trio_sip.message import Request, Response, Via, make_response, parse_message
from trio_sip.resolver import Target
from trio_sip.transport import Leg, StreamLeg, UDPLeg

pytestmark = pytest.mark.anyio

#: Seconds a test waits for a datagram before it fails.
BOUND = 60.0


@contextmanager
def plain_udp_socket() -> Iterator[socket.socket]:
    """A non-blocking UDP socket on 127.0.0.1 with a port the system chose."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        yield sock
    finally:
        sock.close()


def port_of(sock: socket.socket) -> int:
    return int(sock.getsockname()[1])


async def receive(sock: socket.socket) -> tuple[Response, tuple[str, int]]:
    """The next datagram on ``sock``, parsed; it must be a response."""
    with anyio.fail_after(BOUND):
        while True:
            try:
                data, source = sock.recvfrom(65535)
            except BlockingIOError:
                await anyio.wait_readable(sock)
                continue
            message = parse_message(data)
            assert isinstance(message, Response)
            return message, (str(source[0]), int(source[1]))


def nothing_waiting(sock: socket.socket) -> bool:
    """True when no datagram is queued on ``sock`` (loopback delivers at sendto)."""
    try:
        sock.recvfrom(65535)
    except BlockingIOError:
        return True
    return False


def response_with_via(via: str, *, body: bytes = b"") -> Response:
    """A 200 to a MESSAGE whose top Via is ``via``, as make_response builds it."""
    request = Request(
        "MESSAGE",
        "sip:bob@127.0.0.1",
        [
            ("Via", via),
            ("Max-Forwards", "70"),
            ("From", "<sip:alice@example.com>;tag=a1"),
            ("To", "<sip:bob@example.com>"),
            ("Call-ID", "respond-nowait"),
            ("CSeq", "1 MESSAGE"),
            ("Content-Length", "0"),
        ],
    )
    return make_response(request, 200, to_tag="b1", body=body)


def raw_request(via: str, *, call_id: str = "c1") -> bytes:
    """A MESSAGE as a client would put it on the wire, with ``via`` on top."""
    return (
        f"MESSAGE sip:bob@127.0.0.1 SIP/2.0\r\n"
        f"Via: {via}\r\n"
        f"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\n"
        f"To: <sip:bob@example.com>\r\nCall-ID: {call_id}\r\nCSeq: 1 MESSAGE\r\n"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


# ----- sent at once -------------------------------------------------------------------------


async def test_an_answer_from_the_receiver_goes_back_to_the_source_through_rport() -> None:
    # The client's Via names a port nobody listens on and asks for rport: the
    # Dispatcher stamps received/rport as the request comes in (RFC 3581),
    # and the answer, sent before the receiver returns, goes to the port the
    # request really came from.
    outcomes: list[tuple[bool, int]] = []
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:

        def receiver(packet: Request | Response, leg: Leg, source: object) -> None:
            assert isinstance(packet, Request)
            sent = disp.respond_nowait(make_response(packet, 200, to_tag="b1"), leg)
            outcomes.append((sent, disp.statistics().packets_out))

        disp.set_receiver(receiver)
        with plain_udp_socket() as client:
            via = "SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKrport1;rport"
            client.sendto(raw_request(via), disp.legs[0].address)
            response, source = await receive(client)
            stats = disp.statistics()
            client_port = port_of(client)
            leg = disp.legs[0]
    assert outcomes == [(True, 1)]  # sent and counted inside the receiver's call
    assert response.status == 200
    assert response.top_via.received == "127.0.0.1"
    assert response.top_via.rport == client_port
    assert source == leg.address
    assert stats.packets_out == 1
    assert stats.legs[f"udp:127.0.0.1:{leg.port}"].packets_out == 1


async def test_received_and_rport_win_over_sent_by() -> None:
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
        with plain_udp_socket() as sent_by, plain_udp_socket() as real:
            via = (
                f"SIP/2.0/UDP 127.0.0.1:{port_of(sent_by)};branch=z9hG4bKrr"
                f";received=127.0.0.1;rport={port_of(real)}"
            )
            response = response_with_via(via)
            assert Dispatcher.response_target_nowait(response) == Target(
                "udp", "127.0.0.1", port_of(real)
            )
            assert disp.respond_nowait(response)
            arrived, _ = await receive(real)
            # One datagram left (packets_out) and it reached ``real``.
            assert disp.statistics().packets_out == 1
            assert nothing_waiting(sent_by)
    assert arrived.call_id == "respond-nowait"
    assert arrived.status == 200


@pytest.mark.parametrize(
    ("param", "named"),
    [
        # RFC 3261 18.2.2: received names the host; the port stays the Via's.
        pytest.param("received", lambda via: via.received, id="received without rport"),
        # No received: maddr names the host (unreliable transports).
        pytest.param("maddr", lambda via: via.maddr, id="maddr"),
    ],
)
async def test_received_or_maddr_names_the_host_and_the_port_stays(
    param: str, named: Callable[[Via], str | None]
) -> None:
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
        with plain_udp_socket() as client:
            via = f"SIP/2.0/UDP 192.0.2.1:{port_of(client)};branch=z9hG4bK{param};{param}=127.0.0.1"
            response = response_with_via(via)
            assert Dispatcher.response_target_nowait(response) == Target(
                "udp", "127.0.0.1", port_of(client)
            )
            assert disp.respond_nowait(response)
            arrived, _ = await receive(client)
    assert arrived.top_via.host == "192.0.2.1"
    assert named(arrived.top_via) == "127.0.0.1"


async def test_the_leg_given_is_skipped_when_it_does_not_speak_the_via_s_transport() -> None:
    # The request "came" on the TCP leg, but the Via says UDP: the UDP leg sends.
    async with Dispatcher(["tcp:127.0.0.1:0", "udp:127.0.0.1:0"]) as disp:
        tcp, udp = disp.legs
        with plain_udp_socket() as client:
            response = response_with_via(f"SIP/2.0/UDP 127.0.0.1:{port_of(client)};branch=z9hG4bKl")
            assert disp.respond_nowait(response, tcp)
            _, source = await receive(client)
            legs = disp.statistics().legs
    assert source == udp.address
    assert legs[f"udp:127.0.0.1:{udp.port}"].packets_out == 1
    assert legs[f"tcp:127.0.0.1:{tcp.port}"].packets_out == 0


# ----- not sent: False, and nothing on the wire -----------------------------------------------


@pytest.mark.parametrize(
    "via",
    [
        pytest.param("SIP/2.0/UDP localhost:{port};branch=z9hG4bKname", id="host name"),
        pytest.param(
            "SIP/2.0/UDP 192.0.2.1:{port};branch=z9hG4bKmname;maddr=localhost",
            id="maddr name",
        ),
        pytest.param("SIP/2.0/TCP 127.0.0.1:{port};branch=z9hG4bKtcp", id="tcp"),
        pytest.param("SIP/2.0/TLS 127.0.0.1:{port};branch=z9hG4bKtls", id="tls"),
        # A loopback leg reaches no other address, and no leg speaks IPv6.
        pytest.param("SIP/2.0/UDP 192.0.2.1:{port};branch=z9hG4bKfar", id="no leg reaches it"),
        pytest.param("SIP/2.0/UDP [::1]:{port};branch=z9hG4bKv6", id="no leg of its family"),
    ],
)
async def test_false_and_nothing_sent(via: str) -> None:
    async with Dispatcher(["udp:127.0.0.1:0", "tcp:127.0.0.1:0"]) as disp:
        with plain_udp_socket() as client:
            response = response_with_via(via.format(port=port_of(client)))
            assert disp.respond_nowait(response) is False
            stats = disp.statistics()
            assert nothing_waiting(client)
    assert stats.packets_out == 0
    assert all(leg.packets_out == 0 for leg in stats.legs.values())
    assert stats.cache_size == 0  # not sent, not remembered


@pytest.mark.parametrize(
    "via",
    [
        "SIP/2.0/UDP example.com:5060;branch=z9hG4bKn",
        "SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKn;maddr=example.com",
    ],
)
def test_response_target_nowait_is_none_for_a_name(via: str) -> None:
    assert Dispatcher.response_target_nowait(response_with_via(via)) is None


def test_response_target_nowait_for_a_reliable_via_is_its_sent_by() -> None:
    # maddr counts only on unreliable transports (18.2.2); the port defaults to 5060.
    response = response_with_via("SIP/2.0/TCP 192.0.2.1;branch=z9hG4bKt;maddr=192.0.2.9")
    assert Dispatcher.response_target_nowait(response) == Target("tcp", "192.0.2.1", 5060)


async def test_a_failing_send_raises_delivery_error_and_is_counted() -> None:
    # Larger than any datagram: the leg refuses it.
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
        with plain_udp_socket() as client:
            response = response_with_via(
                f"SIP/2.0/UDP 127.0.0.1:{port_of(client)};branch=z9hG4bKbig", body=b"x" * 70000
            )
            with pytest.raises(DeliveryError) as failed:
                disp.respond_nowait(response)
            stats = disp.statistics()
            assert nothing_waiting(client)
    assert failed.value.reason is DeliveryFailure.TRANSPORT
    assert stats.failures == {DeliveryFailure.TRANSPORT.value: 1}
    assert stats.packets_out == 0
    assert stats.cache_size == 0


# ----- the response cache ---------------------------------------------------------------------


def answering_202(disp: Dispatcher, seen: list[Request]) -> Callable[..., None]:
    """A receiver that notes each request and answers it 202 with respond_nowait."""

    def receiver(packet: Request | Response, leg: Leg, source: object) -> None:
        assert isinstance(packet, Request)
        seen.append(packet)
        assert disp.respond_nowait(make_response(packet, 202, to_tag="b1"), leg)

    return receiver


async def test_the_response_is_cached_for_a_retransmitted_request() -> None:
    # As deliver() would: the request sent again is answered from the cache,
    # without reaching the receiver a second time.
    seen: list[Request] = []
    async with Dispatcher(["udp:127.0.0.1:0"]) as disp:
        disp.set_receiver(answering_202(disp, seen))
        with plain_udp_socket() as client:
            data = raw_request(f"SIP/2.0/UDP 127.0.0.1:{port_of(client)};branch=z9hG4bKcache")
            client.sendto(data, disp.legs[0].address)
            first, _ = await receive(client)
            assert disp.statistics().cache_size == 1
            client.sendto(data, disp.legs[0].address)
            again, _ = await receive(client)
            stats = disp.statistics()
    assert len(seen) == 1
    assert first.status == again.status == 202
    assert bytes(again) == bytes(first)
    assert stats.redeliveries == 1
    assert stats.absorbed == 1


async def test_without_the_response_cache_nothing_is_kept() -> None:
    seen: list[Request] = []
    async with Dispatcher(["udp:127.0.0.1:0"], response_cache=False) as disp:
        disp.set_receiver(answering_202(disp, seen))
        with plain_udp_socket() as client:
            data = raw_request(f"SIP/2.0/UDP 127.0.0.1:{port_of(client)};branch=z9hG4bKnocache")
            client.sendto(data, disp.legs[0].address)
            await receive(client)
            client.sendto(data, disp.legs[0].address)
            await receive(client)
            stats = disp.statistics()
    # The retransmission reached the receiver, which answered it itself.
    assert len(seen) == 2
    assert stats.cache_size == 0
    assert stats.redeliveries == 0
    assert stats.packets_out == 2


# ----- the legs' part -------------------------------------------------------------------------


@pytest.mark.parametrize("proto", ["tcp", "tls"])
def test_a_stream_leg_never_sends_without_waiting(proto: str) -> None:
    options = {"verify": False} if proto == "tls" else {}
    leg = Leg.create({"proto": proto, "addr": "127.0.0.1", "port": 0, **options})
    assert isinstance(leg, StreamLeg)
    assert leg.send_nowait(b"OPTIONS", ("127.0.0.1", 5060)) is False
    assert leg.stats.packets_out == 0


async def test_udp_leg_bind_nowait_binds_at_once_and_sends_without_waiting() -> None:
    leg = UDPLeg("127.0.0.1", 0)
    try:
        leg.bind_nowait()
        sock = leg.raw_socket
        assert sock is not None
        assert leg.port == sock.getsockname()[1] != 0
        leg.bind_nowait()  # bound already: the same socket, the same port
        assert leg.raw_socket is sock
        with plain_udp_socket() as client:
            assert leg.send_nowait(b"ping", ("127.0.0.1", port_of(client)))
            with anyio.fail_after(BOUND):
                await anyio.wait_readable(client)
            data, source = client.recvfrom(100)
    finally:
        await leg.aclose()
    assert data == b"ping"
    assert source == ("127.0.0.1", leg.port)
    assert (leg.stats.packets_out, leg.stats.bytes_out) == (1, 4)
    assert leg.raw_socket is None


def test_udp_leg_bind_nowait_on_a_taken_port_fails_loudly() -> None:
    with plain_udp_socket() as taken:
        leg = UDPLeg("127.0.0.1", port_of(taken))
        with pytest.raises(TransportError):
            leg.bind_nowait()
        assert leg.raw_socket is None
