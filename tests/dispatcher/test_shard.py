"""One address, several processes: the framing, the choice of worker by
Call-ID, a worker's own Call-IDs, and the worker's leg
(:mod:`trio_sip.transport.shard`)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import anyio
import pytest

from trio_sip.dispatcher import Dispatcher
from trio_sip.distributor import WorkerPlace
from trio_sip.message import Message, Request, make_response
from trio_sip.transport import Leg
from trio_sip.transport.leg import Address
from trio_sip.transport.shard import InboxUDPLeg, call_id_of_shard, frame, shard_of, unframe

SOURCE = ("127.0.0.1", 5062)


def message(call_id_line: str, method: str = "INVITE", body: str = "", port: int = 5062) -> bytes:
    return (
        f"{method} sip:bob@example.com SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK-1\r\n"
        "From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"
        f"{call_id_line}\r\nCSeq: 1 {method}\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


@pytest.mark.parametrize(
    "source", [("127.0.0.1", 5060), ("::1", 65535), ("fe80::1%eth0", 1), ("10.0.0.1", 0)]
)
def test_frame_round_trip(source: Address) -> None:
    data = b"OPTIONS sip:x SIP/2.0\r\n\r\n\n \x00binary"
    assert unframe(frame(source, data)) == (source, data)


@pytest.mark.parametrize(
    "framed", [b"", b"127.0.0.1 5060", b"127.0.0.1\nX", b" 5060\nX", b"127.0.0.1 x\nX"]
)
def test_malformed_frames_are_refused(framed: bytes) -> None:
    with pytest.raises(ValueError, match="not a framed datagram"):
        unframe(framed)


def test_a_calls_messages_meet_in_one_worker_whatever_their_spelling() -> None:
    shards = 7
    spellings = [
        message("Call-ID: abc@host"),
        message("call-id:abc@host", "ACK"),
        message("CALL-ID :  abc@host  ", "BYE"),
        message("i: abc@host", "BYE"),
        message("I:\tabc@host", "CANCEL"),
    ]
    chosen = {shard_of(data, SOURCE, shards) for data in spellings}
    assert len(chosen) == 1
    # A response too (its start line is no header).
    response = b"SIP/2.0 200 OK\r\nCall-ID: abc@host\r\nCSeq: 1 BYE\r\n\r\n"
    assert shard_of(response, ("192.0.2.9", 9), shards) in chosen


def test_calls_spread_over_the_workers_and_a_body_does_not_count() -> None:
    shards = 4
    chosen = {shard_of(message(f"Call-ID: call-{n}"), SOURCE, shards) for n in range(64)}
    assert chosen == set(range(shards))
    # The first Call-ID is the header's: a line of the body that looks like
    # one does not move the call.
    plain = shard_of(message("Call-ID: call-1"), SOURCE, shards)
    others = [n for n in range(64) if shard_of(message(f"i: call-{n}"), SOURCE, shards) != plain]
    body = f"i: call-{others[0]}\r\n"
    assert shard_of(message("Call-ID: call-1", body=body), SOURCE, shards) == plain


@pytest.mark.parametrize("shards", [1, 2, 5])
def test_a_workers_own_call_ids_come_back_to_it(shards: int) -> None:
    for shard in range(shards):
        for _ in range(20):
            call_id = call_id_of_shard(shard, shards)
            # A request it sends, and the answer to it, in any spelling.
            assert shard_of(message(f"Call-ID: {call_id}"), SOURCE, shards) == shard
            answer = f"SIP/2.0 200 OK\r\ni:{call_id}\r\nCSeq: 1 REGISTER\r\n\r\n".encode()
            assert shard_of(answer, ("192.0.2.9", 9), shards) == shard


def test_a_workers_call_ids_are_drawn_from_its_maker() -> None:
    made = iter(f"id-{n}@host" for n in range(1000))
    picked = [call_id_of_shard(1, 3, lambda: next(made)) for _ in range(5)]
    assert all(shard_of(message(f"Call-ID: {c}"), SOURCE, 3) == 1 for c in picked)
    assert picked == sorted(set(picked), key=picked.index)  # each fresh
    with pytest.raises(ValueError, match="no shard 3 of 3"):
        call_id_of_shard(3, 3)


def test_a_worker_place_round_trips_and_refuses_what_is_not_one() -> None:
    place = WorkerPlace(shard=1, shards=4, udp_fd=5, inbox_fd=9)
    assert str(place) == "1/4:5,9"
    assert WorkerPlace.parse(str(place)) == place
    for bad in ("", "1/4", "1/4:5", "4/4:5,9", "-1/4:5,9", "1,4,5,9", "a/4:5,9"):
        with pytest.raises(ValueError, match="not a worker place"):
            WorkerPlace.parse(bad)


def test_without_a_call_id_the_source_decides() -> None:
    shards = 5
    keepalive = b"\r\n\r\n"
    assert shard_of(keepalive, SOURCE, shards) == shard_of(b"garbage", SOURCE, shards)
    sources = [("127.0.0.1", port) for port in range(5000, 5064)]
    assert {shard_of(keepalive, src, shards) for src in sources} == set(range(shards))


@pytest.fixture
def sockets() -> Iterator[tuple[socket.socket, socket.socket, socket.socket, socket.socket]]:
    """The shared SIP socket, a peer, and the two ends of an inbox."""
    shared = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    with shared, peer, ours, theirs:
        shared.bind(("127.0.0.1", 0))
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(10)
        yield shared, peer, ours, theirs


@pytest.mark.anyio
async def test_inbox_leg_receives_the_framed_and_sends_on_the_shared_socket(
    sockets: tuple[socket.socket, socket.socket, socket.socket, socket.socket],
) -> None:
    shared, peer, distributor_end, inbox = sockets
    ended = anyio.Event()
    leg = InboxUDPLeg(shared.dup(), inbox.dup(), on_end=ended.set)
    got: list[tuple[Message, Leg, Address]] = []
    arrived = anyio.Event()

    def receiver(packet: Message, leg: Leg, source: Address) -> None:
        got.append((packet, leg, source))
        arrived.set()

    peer_address = peer.getsockname()
    async with Dispatcher([leg]) as disp:
        disp.set_receiver(receiver)
        assert leg.address == shared.getsockname()
        assert list(disp.legs) == [leg]
        # The distributor read it from the peer and hands it over, framed.
        options = message("Call-ID: x@y", "OPTIONS", port=peer_address[1])
        distributor_end.send(frame(peer_address, options))
        distributor_end.send(b"not framed")  # dropped, and the next one still comes
        with anyio.fail_after(10):
            await arrived.wait()
        packet, on, source = got[0]
        assert isinstance(packet, Request)
        assert packet.method == "OPTIONS"
        assert (on, source) == (leg, peer_address)
        assert leg.stats.packets_in == 1
        # The answer leaves from the shared address, straight to the peer.
        assert disp.respond_nowait(make_response(packet, 200), leg)
        answer, sender = peer.recvfrom(65535)
        assert answer.startswith(b"SIP/2.0 200 OK")
        assert sender == shared.getsockname()
        # The distributor ends: the leg's task ends and says so.
        distributor_end.close()
        with anyio.fail_after(10):
            await ended.wait()
